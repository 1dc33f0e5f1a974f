from django.contrib.auth import views as auth_views
from django.urls import include, path

from portal import api, views

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("sandbox/switch/", views.sandbox_switch, name="sandbox_switch"),
    path("admin/sandboxes/", views.sandboxes, name="sandboxes"),
    path("health", views.health, name="health"),
    path("data/foundation/sandbox-management/sandboxes", api.SandboxListApi.as_view(),
         name="api_sandboxes"),
    path("data/foundation/sandbox-management/sandboxes/<str:name>", api.SandboxDetailApi.as_view(),
         name="api_sandbox"),
    path("", include("audiences.api.urls")),
    path("", include("audiences.web.urls")),
]

handler404 = "portal.handlers.not_found"
handler500 = "portal.handlers.server_error"
handler403 = "portal.handlers.forbidden"
