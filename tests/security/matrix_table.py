# ruff: noqa: E501 - the table is wide on purpose: one row per request, one column per caller
"""Who may do what: the one table the authorization matrix (test_matrix.py) checks.

One row per request; one column per caller. Callers: ``anon`` (no session, no token), the
session of a user with no role (``norole``), of a ``viewer``, an ``operator`` and an ``admin``
(the admin role's users are staff), and a bearer token of each (``t:...``). Outcomes:

- ``ok``: allowed (any answer that is not a refusal: 2xx, a redirect, or the business rule's
  409/422 when the tenant's state does not allow the operation);
- ``login``: redirected to a login page;
- ``refused``: an admin page that answered with a "no permission" message and did nothing (or,
  for a bulk action, did not offer it);
- ``401``, ``403``, ``404``, ``405``: that status.

Tokens authenticate the JSON API (and ``/metrics``, which scrapers read with one) only; on the
console and the admin they count for nothing (the caller is anonymous). Placeholders in braces
are filled with real ids. After the path, a row may name the bulk operation or admin action it
posts, and ``confirmed`` for the second POST that follows a bulk action's dry run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PERSONAS = [
    "anon",
    "norole",
    "viewer",
    "operator",
    "admin",
    "t:norole",
    "t:viewer",
    "t:operator",
    "t:admin",
]
OUTCOMES = {"ok", "login", "refused", "401", "403", "404", "405"}

TABLE = """
#                                                                                     | anon     norole   viewer   operator admin    t:norole t:viewer t:operator t:admin
# --- console (session; tokens count for nothing here) ---
console       GET   /                                                                 | login    ok       ok       ok       ok       login    login    login    login
console       GET   /accounts/login/                                                  | ok       ok       ok       ok       ok       ok       ok       ok       ok
console       POST  /accounts/logout/                                                 | login    login    login    login    login    login    login    login    login
console       GET   /tenants/                                                         | login    403      ok       ok       ok       login    login    login    login
console       GET   /tenants/new/                                                     | login    403      403      ok       ok       login    login    login    login
console       POST  /tenants/new/                                                     | login    403      403      ok       ok       login    login    login    login
console       GET   /tenants/{tenant}/                                                | login    403      ok       ok       ok       login    login    login    login
console       POST  /tenants/{tenant}/cancel/                                         | login    403      403      ok       ok       login    login    login    login
console       POST  /tenants/{tenant}/reset/                                          | login    403      403      ok       ok       login    login    login    login
console       POST  /tenants/{tenant}/retry/                                          | login    403      403      ok       ok       login    login    login    login
console       POST  /tenants/{tenant}/suspend/                                        | login    403      403      ok       ok       login    login    login    login
console       POST  /tenants/{tenant}/change_plan/                                    | login    403      403      ok       ok       login    login    login    login
console       POST  /tenants/{tenant}/pause/                                          | login    403      403      ok       ok       login    login    login    login
console       POST  /tenants/{tenant}/unpause/                                        | login    403      403      ok       ok       login    login    login    login
console       POST  /tenants/{tenant}/resume/                                         | login    403      403      ok       ok       login    login    login    login
console       POST  /tenants/{tenant}/decommission/                                   | login    403      403      403      ok       login    login    login    login
console       POST  /tenants/{tenant}/no-such-action/                                 | login    403      404      404      404      login    login    login    login
# GET on an operation: the confirmation page with its preview (the service checks the permission)
console       GET   /tenants/{tenant}/cancel/                                         | login    403      403      ok       ok       login    login    login    login
console       GET   /tenants/{tenant}/reset/                                          | login    403      403      ok       ok       login    login    login    login
console       GET   /tenants/{tenant}/retry/                                          | login    403      403      ok       ok       login    login    login    login
console       GET   /tenants/{tenant}/suspend/                                        | login    403      403      ok       ok       login    login    login    login
console       GET   /tenants/{tenant}/change_plan/                                    | login    403      403      ok       ok       login    login    login    login
console       GET   /tenants/{tenant}/pause/                                          | login    403      403      ok       ok       login    login    login    login
console       GET   /tenants/{tenant}/unpause/                                        | login    403      403      ok       ok       login    login    login    login
console       GET   /tenants/{tenant}/resume/                                         | login    403      403      ok       ok       login    login    login    login
console       GET   /tenants/{tenant}/decommission/                                   | login    403      403      403      ok       login    login    login    login
# the approval policy: the approvals page; approve / withdraw a request (here a decommission asked
# at the shell: the operation's permission decides; POST only)
console       GET   /approvals/                                                       | login    403      ok       ok       ok       login    login    login    login
console       POST  /approvals/{approval}/approve/                                    | login    403      403      403      ok       login    login    login    login
console       POST  /approvals/{approval}/withdraw/                                   | login    403      403      403      ok       login    login    login    login
console       GET   /approvals/{approval}/approve/                                    | login    405      405      405      405      login    login    login    login
console       POST  /approvals/{approval}/no-such-decision/                           | login    403      404      404      404      login    login    login    login
# bulk: the selection's dry run, then (confirmed) the real thing; one permission check first
console       GET   /tenants/bulk/                                                    | login    405      405      405      405      login    login    login    login
console       POST  /tenants/bulk/  cancel                                            | login    403      403      ok       ok       login    login    login    login
console       POST  /tenants/bulk/  reset                                             | login    403      403      ok       ok       login    login    login    login
console       POST  /tenants/bulk/  retry                                             | login    403      403      ok       ok       login    login    login    login
console       POST  /tenants/bulk/  suspend                                           | login    403      403      ok       ok       login    login    login    login
console       POST  /tenants/bulk/  change_plan                                       | login    403      403      ok       ok       login    login    login    login
console       POST  /tenants/bulk/  pause                                             | login    403      403      ok       ok       login    login    login    login
console       POST  /tenants/bulk/  unpause                                           | login    403      403      ok       ok       login    login    login    login
console       POST  /tenants/bulk/  resume                                            | login    403      403      ok       ok       login    login    login    login
console       POST  /tenants/bulk/  decommission                                      | login    403      403      403      ok       login    login    login    login
console       POST  /tenants/bulk/  cancel confirmed                                  | login    403      403      ok       ok       login    login    login    login
console       POST  /tenants/bulk/  reset confirmed                                   | login    403      403      ok       ok       login    login    login    login
console       POST  /tenants/bulk/  retry confirmed                                   | login    403      403      ok       ok       login    login    login    login
console       POST  /tenants/bulk/  suspend confirmed                                 | login    403      403      ok       ok       login    login    login    login
console       POST  /tenants/bulk/  change_plan confirmed                             | login    403      403      ok       ok       login    login    login    login
console       POST  /tenants/bulk/  pause confirmed                                   | login    403      403      ok       ok       login    login    login    login
console       POST  /tenants/bulk/  unpause confirmed                                 | login    403      403      ok       ok       login    login    login    login
console       POST  /tenants/bulk/  resume confirmed                                  | login    403      403      ok       ok       login    login    login    login
console       POST  /tenants/bulk/  decommission confirmed                            | login    403      403      403      ok       login    login    login    login
# scheduled operations: the list (every role), cancel (the operation's permission; none here)
console       GET   /schedules/                                                       | login    403      ok       ok       ok       login    login    login    login
console       POST  /schedules/{schedule}/cancel/                                  | login    403      404      404      404      login    login    login    login
console       GET   /audit/                                                           | login    403      ok       ok       ok       login    login    login    login

# --- JSON API (session or bearer token); every operation of the OpenAPI document ---
api           GET   /api/v1/                                                          | 404      404      404      404      404      404      404      404      404
api           GET   /api/v1/openapi.json                                              | ok       ok       ok       ok       ok       ok       ok       ok       ok
api           GET   /api/v1/docs                                                      | ok       ok       ok       ok       ok       ok       ok       ok       ok
api           GET   /api/v1/docs/assets/swagger-ui.css                                | ok       ok       ok       ok       ok       ok       ok       ok       ok
api           GET   /api/v1/no/such/thing                                             | 404      404      404      404      404      404      404      404      404
api           GET   /api/v1/tenants                                                   | 401      403      ok       ok       ok       403      ok       ok       ok
api           POST  /api/v1/tenants                                                   | 401      403      403      ok       ok       403      403      ok       ok
api           GET   /api/v1/tenants/{tenant_id}                                       | 401      403      ok       ok       ok       403      ok       ok       ok
api           POST  /api/v1/tenants/{tenant_id}/cancel                                | 401      403      403      ok       ok       403      403      ok       ok
api           POST  /api/v1/tenants/{tenant_id}/reset                                 | 401      403      403      ok       ok       403      403      ok       ok
api           POST  /api/v1/tenants/{tenant_id}/retry                                 | 401      403      403      ok       ok       403      403      ok       ok
api           POST  /api/v1/tenants/{tenant_id}/suspend                               | 401      403      403      ok       ok       403      403      ok       ok
api           POST  /api/v1/tenants/{tenant_id}/change_plan                           | 401      403      403      ok       ok       403      403      ok       ok
api           POST  /api/v1/tenants/{tenant_id}/pause                                 | 401      403      403      ok       ok       403      403      ok       ok
api           POST  /api/v1/tenants/{tenant_id}/unpause                               | 401      403      403      ok       ok       403      403      ok       ok
api           POST  /api/v1/tenants/{tenant_id}/resume                                | 401      403      403      ok       ok       403      403      ok       ok
api           POST  /api/v1/tenants/{tenant_id}/decommission                          | 401      403      403      403      ok       403      403      403      ok
api           GET   /api/v1/tenants/{tenant_id}/runs                                  | 401      403      ok       ok       ok       403      ok       ok       ok
api           POST  /api/v1/tenants/{tenant_id}/decommission/approve                  | 401      403      403      403      ok       403      403      403      ok
api           POST  /api/v1/tenants/{tenant_id}/decommission/withdraw                 | 401      403      403      403      ok       403      403      403      ok
api           GET   /api/v1/approvals                                                 | 401      403      ok       ok       ok       403      ok       ok       ok
api           POST  /api/v1/approvals/{approval_id}/approve                           | 401      403      403      403      ok       403      403      403      ok
api           POST  /api/v1/approvals/{approval_id}/withdraw                          | 401      403      403      403      ok       403      403      403      ok
api           POST  /api/v1/tenants/bulk/cancel                                       | 401      403      403      ok       ok       403      403      ok       ok
api           POST  /api/v1/tenants/bulk/reset                                        | 401      403      403      ok       ok       403      403      ok       ok
api           POST  /api/v1/tenants/bulk/retry                                        | 401      403      403      ok       ok       403      403      ok       ok
api           POST  /api/v1/tenants/bulk/suspend                                      | 401      403      403      ok       ok       403      403      ok       ok
api           POST  /api/v1/tenants/bulk/change_plan                                  | 401      403      403      ok       ok       403      403      ok       ok
api           POST  /api/v1/tenants/bulk/pause                                        | 401      403      403      ok       ok       403      403      ok       ok
api           POST  /api/v1/tenants/bulk/unpause                                      | 401      403      403      ok       ok       403      403      ok       ok
api           POST  /api/v1/tenants/bulk/resume                                       | 401      403      403      ok       ok       403      403      ok       ok
api           POST  /api/v1/tenants/bulk/decommission                                 | 401      403      403      403      ok       403      403      403      ok
api           GET   /api/v1/tenants/{tenant_id}/events                                | 401      403      ok       ok       ok       403      ok       ok       ok
api           GET   /api/v1/schedules                                                 | 401      403      ok       ok       ok       403      ok       ok       ok
api           GET   /api/v1/schedules/{schedule_id}                                  | 401      403      404      404      404      403      404      404      404
api           DELETE /api/v1/schedules/{schedule_id}                                 | 401      403      404      404      404      403      404      404      404
api           GET   /api/v1/audit                                                     | 401      403      ok       ok       ok       403      ok       ok       ok

# --- probes and metrics: /healthz and /readyz are open; /metrics takes a token (it is an API
# for scrapers) or a session, of a user who may view tenants ---
observability GET   /healthz                                                          | ok       ok       ok       ok       ok       ok       ok       ok       ok
observability GET   /readyz                                                           | ok       ok       ok       ok       ok       ok       ok       ok       ok
observability GET   /metrics                                                          | 401      403      ok       ok       ok       403      ok       ok       ok
site          GET   /favicon.ico                                                      | ok       ok       ok       ok       ok       ok       ok       ok       ok

# --- admin: members of a role may use it, each within its permissions; tokens count for nothing.
# A bare object URL (.../<id>/) only redirects to its change page: ok for everyone who gets in.
admin         GET   /admin/                                                           | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/login/                                                     | ok       ok       ok       ok       ok       ok       ok       ok       ok
admin         POST  /admin/logout/                                                    | ok       ok       login    login    login    ok       ok       ok       ok
admin         GET   /admin/password_change/                                           | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/password_change/done/                                      | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/autocomplete/                                              | login    login    403      403      403      login    login    login    login
admin         GET   /admin/jsi18n/                                                    | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/r/{tenant_ct}/{tenant}/                                    | login    login    404      404      404      login    login    login    login
admin         GET   /admin/no/such/page/                                              | login    login    404      404      404      login    login    login    login
admin         GET   /admin/auth/                                                      | login    login    404      404      404      login    login    login    login
admin         GET   /admin/audit/                                                     | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/tenants/                                                   | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/provisioning/                                              | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/api/                                                       | login    login    404      404      404      login    login    login    login
admin         GET   /admin/axes/                                                      | login    login    404      404      404      login    login    login    login
admin         GET   /admin/auth/group/                                                | login    login    403      403      403      login    login    login    login
admin         GET   /admin/auth/group/add/                                            | login    login    403      403      403      login    login    login    login
admin         GET   /admin/auth/group/{group}/                                        | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/auth/group/{group}/change/                                 | login    login    403      403      403      login    login    login    login
admin         GET   /admin/auth/group/{group}/history/                                | login    login    403      403      403      login    login    login    login
admin         GET   /admin/auth/group/{group}/delete/                                 | login    login    403      403      403      login    login    login    login
admin         GET   /admin/auth/user/                                                 | login    login    403      403      403      login    login    login    login
admin         GET   /admin/auth/user/add/                                             | login    login    403      403      403      login    login    login    login
admin         GET   /admin/auth/user/{user}/                                          | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/auth/user/{user}/change/                                   | login    login    403      403      403      login    login    login    login
admin         GET   /admin/auth/user/{user}/history/                                  | login    login    403      403      403      login    login    login    login
admin         GET   /admin/auth/user/{user}/delete/                                   | login    login    403      403      403      login    login    login    login
admin         GET   /admin/audit/event/                                               | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/audit/event/add/                                           | login    login    403      403      403      login    login    login    login
admin         GET   /admin/audit/event/{event}/                                       | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/audit/event/{event}/change/                                | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/audit/event/{event}/history/                               | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/audit/event/{event}/delete/                                | login    login    403      403      403      login    login    login    login
admin         GET   /admin/tenants/tenant/                                            | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/tenants/tenant/add/                                        | login    login    403      ok       ok       login    login    login    login
admin         GET   /admin/tenants/tenant/{tenant}/                                   | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/tenants/tenant/{tenant}/change/                            | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/tenants/tenant/{tenant}/history/                           | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/tenants/tenant/{tenant}/delete/                            | login    login    403      403      403      login    login    login    login
admin         GET   /admin/provisioning/run/                                          | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/provisioning/run/add/                                      | login    login    403      403      403      login    login    login    login
admin         GET   /admin/provisioning/run/{run}/                                    | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/provisioning/run/{run}/change/                             | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/provisioning/run/{run}/history/                            | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/provisioning/run/{run}/delete/                             | login    login    403      403      403      login    login    login    login
admin         GET   /admin/provisioning/allocation/                                   | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/provisioning/allocation/add/                               | login    login    403      403      403      login    login    login    login
admin         GET   /admin/provisioning/allocation/{allocation}/                      | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/provisioning/allocation/{allocation}/change/               | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/provisioning/allocation/{allocation}/history/              | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/provisioning/allocation/{allocation}/delete/               | login    login    403      403      403      login    login    login    login
admin         GET   /admin/api/apitoken/                                              | login    login    403      403      403      login    login    login    login
admin         GET   /admin/api/apitoken/add/                                          | login    login    403      403      403      login    login    login    login
admin         GET   /admin/api/apitoken/{apitoken}/                                   | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/api/apitoken/{apitoken}/change/                            | login    login    403      403      403      login    login    login    login
admin         GET   /admin/api/apitoken/{apitoken}/history/                           | login    login    403      403      403      login    login    login    login
admin         GET   /admin/api/apitoken/{apitoken}/delete/                            | login    login    403      403      403      login    login    login    login
admin         GET   /admin/axes/accessattempt/                                        | login    login    403      403      403      login    login    login    login
admin         GET   /admin/axes/accessattempt/add/                                    | login    login    403      403      403      login    login    login    login
admin         GET   /admin/axes/accessattempt/{accessattempt}/                        | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/axes/accessattempt/{accessattempt}/change/                 | login    login    403      403      403      login    login    login    login
admin         GET   /admin/axes/accessattempt/{accessattempt}/history/                | login    login    403      403      403      login    login    login    login
admin         GET   /admin/axes/accessattempt/{accessattempt}/delete/                 | login    login    403      403      403      login    login    login    login
admin         GET   /admin/axes/accesslog/                                            | login    login    403      403      403      login    login    login    login
admin         GET   /admin/axes/accesslog/add/                                        | login    login    403      403      403      login    login    login    login
admin         GET   /admin/axes/accesslog/{accesslog}/                                | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/axes/accesslog/{accesslog}/change/                         | login    login    403      403      403      login    login    login    login
admin         GET   /admin/axes/accesslog/{accesslog}/history/                        | login    login    403      403      403      login    login    login    login
admin         GET   /admin/axes/accesslog/{accesslog}/delete/                         | login    login    403      403      403      login    login    login    login
admin         GET   /admin/axes/accessfailurelog/                                     | login    login    403      403      403      login    login    login    login
admin         GET   /admin/axes/accessfailurelog/add/                                 | login    login    403      403      403      login    login    login    login
admin         GET   /admin/axes/accessfailurelog/{accessfailurelog}/                  | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/axes/accessfailurelog/{accessfailurelog}/change/           | login    login    403      403      403      login    login    login    login
admin         GET   /admin/axes/accessfailurelog/{accessfailurelog}/history/          | login    login    403      403      403      login    login    login    login
admin         GET   /admin/axes/accessfailurelog/{accessfailurelog}/delete/           | login    login    403      403      403      login    login    login    login
admin         GET   /admin/auth/user/{user}/password/                                 | login    login    403      403      403      login    login    login    login
# webhooks: superusers only (subscriptions hold the signing secrets)
admin         GET   /admin/webhooks/                                                  | login    login    404      404      404      login    login    login    login
admin         GET   /admin/webhooks/subscription/                                     | login    login    403      403      403      login    login    login    login
admin         GET   /admin/webhooks/subscription/add/                                 | login    login    403      403      403      login    login    login    login
admin         GET   /admin/webhooks/subscription/{subscription}/                      | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/webhooks/subscription/{subscription}/change/               | login    login    403      403      403      login    login    login    login
admin         GET   /admin/webhooks/subscription/{subscription}/history/              | login    login    403      403      403      login    login    login    login
admin         GET   /admin/webhooks/subscription/{subscription}/delete/               | login    login    403      403      403      login    login    login    login
admin         GET   /admin/webhooks/delivery/                                         | login    login    403      403      403      login    login    login    login
admin         GET   /admin/webhooks/delivery/add/                                     | login    login    403      403      403      login    login    login    login
admin         GET   /admin/webhooks/delivery/{delivery}/                              | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/webhooks/delivery/{delivery}/change/                       | login    login    403      403      403      login    login    login    login
admin         GET   /admin/webhooks/delivery/{delivery}/history/                      | login    login    403      403      403      login    login    login    login
admin         GET   /admin/webhooks/delivery/{delivery}/delete/                       | login    login    403      403      403      login    login    login    login
# reconciliation's findings: read only, for whoever reads runs and allocations
admin         GET   /admin/provisioning/resourcefinding/                              | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/provisioning/resourcefinding/add/                          | login    login    403      403      403      login    login    login    login
admin         GET   /admin/provisioning/resourcefinding/{resourcefinding}/            | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/provisioning/resourcefinding/{resourcefinding}/change/     | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/provisioning/resourcefinding/{resourcefinding}/history/    | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/provisioning/resourcefinding/{resourcefinding}/delete/     | login    login    403      403      403      login    login    login    login
admin         POST  /admin/tenants/tenant/{tenant}/action/cancel/                     | login    login    refused  ok       ok       login    login    login    login
admin         POST  /admin/tenants/tenant/{tenant}/action/reset/                      | login    login    refused  ok       ok       login    login    login    login
admin         POST  /admin/tenants/tenant/{tenant}/action/retry/                      | login    login    refused  ok       ok       login    login    login    login
admin         POST  /admin/tenants/tenant/{tenant}/action/suspend/                    | login    login    refused  ok       ok       login    login    login    login
admin         POST  /admin/tenants/tenant/{tenant}/action/change_plan/                | login    login    refused  ok       ok       login    login    login    login
admin         POST  /admin/tenants/tenant/{tenant}/action/pause/                      | login    login    refused  ok       ok       login    login    login    login
admin         POST  /admin/tenants/tenant/{tenant}/action/unpause/                    | login    login    refused  ok       ok       login    login    login    login
admin         POST  /admin/tenants/tenant/{tenant}/action/resume/                     | login    login    refused  ok       ok       login    login    login    login
admin         POST  /admin/tenants/tenant/{tenant}/action/decommission/               | login    login    refused  refused  ok       login    login    login    login
# GET on an operation button: the confirmation page with its preview
admin         GET   /admin/tenants/tenant/{tenant}/action/cancel/                     | login    login    refused  ok       ok       login    login    login    login
admin         GET   /admin/tenants/tenant/{tenant}/action/reset/                      | login    login    refused  ok       ok       login    login    login    login
admin         GET   /admin/tenants/tenant/{tenant}/action/retry/                      | login    login    refused  ok       ok       login    login    login    login
admin         GET   /admin/tenants/tenant/{tenant}/action/suspend/                    | login    login    refused  ok       ok       login    login    login    login
admin         GET   /admin/tenants/tenant/{tenant}/action/change_plan/                | login    login    refused  ok       ok       login    login    login    login
admin         GET   /admin/tenants/tenant/{tenant}/action/pause/                      | login    login    refused  ok       ok       login    login    login    login
admin         GET   /admin/tenants/tenant/{tenant}/action/unpause/                    | login    login    refused  ok       ok       login    login    login    login
admin         GET   /admin/tenants/tenant/{tenant}/action/resume/                     | login    login    refused  ok       ok       login    login    login    login
admin         GET   /admin/tenants/tenant/{tenant}/action/decommission/               | login    login    refused  refused  ok       login    login    login    login
# the approval policy in the admin: requests are read only; approve / withdraw (the operation's
# permission decides: a decommission here)
admin         GET   /admin/tenants/approvalrequest/                                   | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/tenants/approvalrequest/add/                               | login    login    403      403      403      login    login    login    login
admin         GET   /admin/tenants/approvalrequest/{approval}/                        | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/tenants/approvalrequest/{approval}/change/                 | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/tenants/approvalrequest/{approval}/history/                | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/tenants/approvalrequest/{approval}/delete/                 | login    login    403      403      403      login    login    login    login
admin         POST  /admin/tenants/approvalrequest/{approval}/decide/approve/         | login    login    refused  refused  ok       login    login    login    login
admin         POST  /admin/tenants/approvalrequest/{approval}/decide/withdraw/        | login    login    refused  refused  ok       login    login    login    login
admin         GET   /admin/tenants/schedule/                                          | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/tenants/schedule/add/                                      | login    login    403      403      403      login    login    login    login
admin         GET   /admin/tenants/schedule/{admin_schedule}/                         | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/tenants/schedule/{admin_schedule}/change/                  | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/tenants/schedule/{admin_schedule}/history/                 | login    login    ok       ok       ok       login    login    login    login
admin         GET   /admin/tenants/schedule/{admin_schedule}/delete/                  | login    login    403      403      403      login    login    login    login

# --- admin bulk actions (POST to the list); refused = not offered, nothing done; ok = the
# dry-run confirmation page (tenants) or the action done ---
admin-action  POST  /admin/api/apitoken/  api.apitoken:revoke                         | login    login    403      403      403      login    login    login    login
admin-action  POST  /admin/auth/group/  auth.group:delete_selected                    | login    login    403      403      403      login    login    login    login
admin-action  POST  /admin/auth/user/  auth.user:delete_selected                      | login    login    403      403      403      login    login    login    login
admin-action  POST  /admin/axes/accessattempt/  axes.accessattempt:cleanup_expired_attempts| login    login    403      403      403      login    login    login    login
admin-action  POST  /admin/axes/accessattempt/  axes.accessattempt:delete_selected    | login    login    403      403      403      login    login    login    login
admin-action  POST  /admin/axes/accessfailurelog/  axes.accessfailurelog:delete_selected| login    login    403      403      403      login    login    login    login
admin-action  POST  /admin/axes/accesslog/  axes.accesslog:delete_selected            | login    login    403      403      403      login    login    login    login
admin-action  POST  /admin/tenants/approvalrequest/  tenants.approvalrequest:approve_selected| login    login    refused  refused  ok       login    login    login    login
admin-action  POST  /admin/tenants/approvalrequest/  tenants.approvalrequest:withdraw_selected| login    login    refused  refused  ok       login    login    login    login
admin-action  POST  /admin/tenants/tenant/  tenants.tenant:cancel_selected            | login    login    refused  ok       ok       login    login    login    login
admin-action  POST  /admin/tenants/tenant/  tenants.tenant:decommission_selected      | login    login    refused  refused  ok       login    login    login    login
admin-action  POST  /admin/tenants/tenant/  tenants.tenant:reset_selected             | login    login    refused  ok       ok       login    login    login    login
admin-action  POST  /admin/tenants/tenant/  tenants.tenant:resume_selected            | login    login    refused  ok       ok       login    login    login    login
admin-action  POST  /admin/tenants/tenant/  tenants.tenant:retry_selected             | login    login    refused  ok       ok       login    login    login    login
admin-action  POST  /admin/tenants/tenant/  tenants.tenant:suspend_selected           | login    login    refused  ok       ok       login    login    login    login
admin-action  POST  /admin/tenants/tenant/  tenants.tenant:pause_selected             | login    login    refused  ok       ok       login    login    login    login
admin-action  POST  /admin/tenants/tenant/  tenants.tenant:unpause_selected           | login    login    refused  ok       ok       login    login    login    login
admin-action  POST  /admin/tenants/tenant/  tenants.tenant:change_plan_selected       | login    login    refused  ok       ok       login    login    login    login
admin-action  POST  /admin/tenants/schedule/  tenants.schedule:cancel_selected        | login    login    refused  ok       ok       login    login    login    login
admin-action  POST  /admin/webhooks/delivery/  webhooks.delivery:redeliver            | login    login    403      403      403      login    login    login    login
admin-action  POST  /admin/webhooks/subscription/  webhooks.subscription:delete_selected| login    login    403      403      403      login    login    login    login
# the same, confirmed (post=yes after the dry run): performed through the bulk service
admin-action  POST  /admin/tenants/tenant/  tenants.tenant:cancel_selected confirmed  | login    login    refused  ok       ok       login    login    login    login
admin-action  POST  /admin/tenants/tenant/  tenants.tenant:decommission_selected confirmed| login    login    refused  refused  ok       login    login    login    login
admin-action  POST  /admin/tenants/tenant/  tenants.tenant:reset_selected confirmed   | login    login    refused  ok       ok       login    login    login    login
admin-action  POST  /admin/tenants/tenant/  tenants.tenant:resume_selected confirmed  | login    login    refused  ok       ok       login    login    login    login
admin-action  POST  /admin/tenants/tenant/  tenants.tenant:retry_selected confirmed   | login    login    refused  ok       ok       login    login    login    login
admin-action  POST  /admin/tenants/tenant/  tenants.tenant:suspend_selected confirmed | login    login    refused  ok       ok       login    login    login    login
admin-action  POST  /admin/tenants/tenant/  tenants.tenant:pause_selected confirmed   | login    login    refused  ok       ok       login    login    login    login
admin-action  POST  /admin/tenants/tenant/  tenants.tenant:unpause_selected confirmed | login    login    refused  ok       ok       login    login    login    login
"""

# Management commands run in a shell, trusted like the database (Actor.shell): no role applies;
# the audit feed records --actor (default: the OS user). Listed so that a new command path is a
# decision too.
COMMANDS: dict[str, str] = {
    "audit tail": "shell (trusted)",
    "audit verify": "shell (trusted)",
    "create_api_token": "shell (trusted)",
    "reconcile": "shell (trusted)",
    "schedule cancel": "shell (trusted)",
    "schedule list": "shell (trusted)",
    "seed_demo": "shell (trusted)",
    "approval approve": "shell (trusted)",
    "approval list": "shell (trusted)",
    "approval withdraw": "shell (trusted)",
    "tenant approve": "shell (trusted)",
    "tenant bulk": "shell (trusted)",
    "tenant cancel": "shell (trusted)",
    "tenant create": "shell (trusted)",
    "tenant decommission": "shell (trusted)",
    "tenant list": "shell (trusted)",
    "tenant pause": "shell (trusted)",
    "tenant reset": "shell (trusted)",
    "tenant resume": "shell (trusted)",
    "tenant retry": "shell (trusted)",
    "tenant show": "shell (trusted)",
    "tenant suspend": "shell (trusted)",
    "tenant change-plan": "shell (trusted)",
    "tenant change_plan": "shell (trusted)",
    "tenant unpause": "shell (trusted)",
    "tenant withdraw": "shell (trusted)",
    "webhook add": "shell (trusted)",
    "webhook list": "shell (trusted)",
    "webhook remove": "shell (trusted)",
}


@dataclass(frozen=True)
class Row:
    door: str
    method: str
    path: str
    action: str
    expected: tuple[str, ...]
    confirmed: bool = False  # a bulk action's second POST, after its dry run

    @property
    def template(self) -> str:
        return self.path

    def body(self, ids: dict[str, Any], serial: int) -> dict[str, Any]:
        if self.door == "admin-action":
            body = {
                "action": self.action.split(":")[1],
                "_selected_action": [ids[MODEL_ID[self.action.split(":")[0]]]],
                "index": "0",
            }
            return {**body, "post": "yes"} if self.confirmed else body
        if self.path == "/tenants/bulk/":
            body = {"action": self.action, "ids": [ids["tenant"]]}
            return {**body, "confirm": "yes"} if self.confirmed else body
        if self.path.startswith("/api/v1/tenants/bulk/"):
            return {"ids": [str(ids["tenant"])]}
        if self.path == "/tenants/new/" or self.path == "/api/v1/tenants":
            return {
                "slug": "matrix-new",
                "name": "Matrix New",
                "plan": "starter",
                "admin_email": "m@x.test",
                "start": False,
            }
        if self.path.endswith("/decommission/"):
            return {"confirm_slug": ids["tenant_slug"]}
        return {}


MODEL_ID = {
    "tenants.tenant": "tenant",
    "tenants.schedule": "admin_schedule",
    "api.apitoken": "apitoken",
    "auth.user": "user",
    "auth.group": "group",
    "audit.event": "event",
    "provisioning.run": "run",
    "provisioning.allocation": "allocation",
    "axes.accessattempt": "accessattempt",
    "axes.accesslog": "accesslog",
    "axes.accessfailurelog": "accessfailurelog",
    "webhooks.subscription": "subscription",
    "webhooks.delivery": "delivery",
    "provisioning.resourcefinding": "resourcefinding",
    "tenants.approvalrequest": "approval",
}


def parse_table(text: str) -> list[Row]:
    rows = []
    for line in text.strip().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        request, _, answers = line.partition("|")
        parts = request.split()
        door, method, path = parts[:3]
        action = parts[3] if len(parts) > 3 else ""
        flags = parts[4:]
        assert flags in ([], ["confirmed"]), f"unknown flag in: {line}"
        expected = tuple(answers.split())
        assert len(expected) == len(PERSONAS), f"row needs {len(PERSONAS)} answers: {line}"
        assert set(expected) <= OUTCOMES, f"unknown outcome in: {line}"
        rows.append(Row(door, method, path, action, expected, confirmed=bool(flags)))
    return rows


def markdown() -> str:
    """The table for docs/security.md."""
    lines = [
        "| door | request | " + " | ".join(PERSONAS) + " |",
        "|---" * (len(PERSONAS) + 2) + "|",
    ]
    for row in parse_table(TABLE):
        what = ", ".join(filter(None, [row.action, "confirmed" if row.confirmed else ""]))
        request = f"{row.method} {row.path}" + (f" ({what})" if what else "")
        lines.append(f"| {row.door} | `{request}` | " + " | ".join(row.expected) + " |")
    lines += ["", "| command | who may run it |", "|---|---|"]
    lines += [f"| `manage.py {path}` | {who} |" for path, who in sorted(COMMANDS.items())]
    return "\n".join(lines) + "\n"
