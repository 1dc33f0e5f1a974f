import pytest

from audiences.models import MergePolicy, Tag
from portal.scope import ScopeNotSet, current_sandbox, sandbox_scope


def test_scoped_query_without_a_sandbox_fails_closed(acme_prod):
    with pytest.raises(ScopeNotSet):
        list(Tag.objects.all())


def test_scoped_query_sees_only_its_own_sandbox(acme_prod, globex_prod):
    with sandbox_scope(acme_prod):
        Tag.objects.create(name="vip")
    with sandbox_scope(globex_prod):
        Tag.objects.create(name="vip")
        Tag.objects.create(name="lapsed")
        assert sorted(Tag.objects.values_list("name", flat=True)) == ["lapsed", "vip"]
    with sandbox_scope(acme_prod):
        assert list(Tag.objects.values_list("name", flat=True)) == ["vip"]
    assert Tag.objects.unscoped().count() == 3


def test_create_takes_the_current_sandbox(acme_prod):
    with sandbox_scope(acme_prod):
        tag = Tag.objects.create(name="new")
        assert tag.sandbox == acme_prod == current_sandbox()


def test_scope_is_restored_after_nested_blocks(acme_prod, acme_dev):
    with sandbox_scope(acme_prod):
        with sandbox_scope(acme_dev):
            assert current_sandbox() == acme_dev
        assert current_sandbox() == acme_prod


def test_every_sandbox_starts_with_one_default_merge_policy(acme_prod, acme_dev):
    for sandbox in (acme_prod, acme_dev):
        with sandbox_scope(sandbox):
            default = MergePolicy.objects.get(is_default=True)
            assert default.is_active_on_edge
            assert default.identity_graph == "pdg"
