"""The product's URLs plus the in-stack floor: the bare project's view (bench/bare/urls.py, the
same code) served inside our stack (our settings, middleware and process). Against the bare
project serving the same view, the difference is the cost of our middleware and settings."""

from django.urls import path

from bench.bare.urls import tenant_detail
from controlplane.urls import urlpatterns as product

urlpatterns = [path("bench/floor/<uuid:tenant_id>", tenant_detail), *product]
