"""The product's URLs plus the floor: a bare Django JSON view of one tenant row."""

from django.http import JsonResponse
from django.urls import path

from controlplane.urls import urlpatterns as product
from tenants.models import Tenant


def floor_detail(request, tenant_id):
    row = Tenant.objects.filter(pk=tenant_id).values("id", "slug", "name", "plan").first()
    return JsonResponse(row or {}, status=200 if row else 404)


urlpatterns = [path("bench/floor/<uuid:tenant_id>", floor_detail), *product]
