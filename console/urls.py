from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

app_name = "console"

urlpatterns = [
    path("", views.index, name="index"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("tenants/", views.tenant_list, name="tenant_list"),
    path("tenants/new/", views.tenant_new, name="tenant_new"),
    path("tenants/<uuid:tenant_id>/", views.tenant_detail, name="tenant_detail"),
    path("tenants/bulk/", views.tenant_bulk, name="tenant_bulk"),
    path("approvals/", views.approval_list, name="approval_list"),
    path(
        "approvals/<uuid:approval_id>/<slug:decision>/",
        views.approval_decide,
        name="approval_decide",
    ),
    path(
        "tenants/<uuid:tenant_id>/<slug:action>/",
        views.tenant_action,
        name="tenant_action",
    ),
    path("audit/", views.audit_feed, name="audit_feed"),
    path("schedules/", views.schedule_list, name="schedule_list"),
    path("schedules/<uuid:schedule_id>/cancel/", views.schedule_cancel, name="schedule_cancel"),
]
