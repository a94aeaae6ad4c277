"""Settings for the benchmarks' processes: the product's, plus the floor's URL and, when
BENCH_PROVIDER_LATENCY is set, providers that take that long (as real cloud APIs do);
BENCH_PROVIDERS=remote swaps the stand-in providers for ones that do no local work."""

from controlplane.settings import *  # noqa: F403
from controlplane.settings import CONTROLPLANE_PROVIDERS, env_float, env_str

ROOT_URLCONF = "bench.urls"
BENCH_PROVIDER_LATENCY = env_float("BENCH_PROVIDER_LATENCY", 0.0)
if BENCH_PROVIDER_LATENCY:
    CONTROLPLANE_PROVIDERS = {
        kind: f"bench.providers.Slow{kind.title()}" for kind in CONTROLPLANE_PROVIDERS
    }
if env_str("BENCH_PROVIDERS", "") == "fleet":  # bench/fleet.py: 50-500 ms, limits of their own
    CONTROLPLANE_PROVIDERS = {
        kind: f"bench.fleet_providers.Fleet{kind.title()}" for kind in CONTROLPLANE_PROVIDERS
    }
if env_str("BENCH_PROVIDERS", "") == "remote":
    CONTROLPLANE_PROVIDERS = {
        kind: f"bench.providers.Remote{kind.title()}" for kind in CONTROLPLANE_PROVIDERS
    }
