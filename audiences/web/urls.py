from django.urls import path

from audiences.web import views

app_name = "audiences"

urlpatterns = [
    path("", views.browse, name="browse"),
    path("merge-policies/", views.merge_policies, name="merge_policies"),
]
