"""Hostile numbers, ranges, times and nesting get 400/404 with Harbor's error JSON, never a 500."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.accounts import API

HUGE = "194932421783038885888"  # beyond 64 bits
PAST_INT64 = str(2**63)
PAST_ID = str(2**31)  # ids are 32-bit database keys (PostgreSQL's integer)


def assert_refused(r: httpx.Response, *statuses: int) -> None:
    assert r.status_code in statuses, (r.status_code, r.text)
    assert r.json()["errors"][0]["code"] in {"BAD_REQUEST", "NOT_FOUND"}, r.text


@pytest.mark.parametrize("path", [
    f"/quotas/{HUGE}", f"/quotas/{PAST_INT64}", f"/quotas/{PAST_ID}", f"/system/gc/{2**63 - 2}",
    f"/retentions/{2**63 - 2}/executions", "/quotas/-1", "/quotas/0", "/users/-5", f"/users/{HUGE}",
    f"/robots/{HUGE}", f"/system/gc/{HUGE}", f"/retentions/{HUGE}", f"/retentions/1/executions/{HUGE}",
    f"/retentions/1/executions/1/tasks/{HUGE}", f"/projects/library/members/{HUGE}",
    f"/projects/library/immutabletagrules/{HUGE}", f"/labels/{HUGE}", f"/labels/{2**49}", "/labels/0",
    f"/labels?scope=p&project_id={HUGE}",
])
def test_ids_beyond_64_bits_or_below_1_are_refused(admin: httpx.Client, path: str) -> None:
    method = "DELETE" if path.endswith("immutabletagrules/" + HUGE) else "GET"
    assert_refused(admin.request(method, API + path), 400)


@pytest.mark.parametrize("query", [
    "page=100000000000000000000", f"page={2**62}", "page=-1", "page=0", "page_size=100000000000000000000",
    "page_size=-3", "page_size=101",
])
@pytest.mark.parametrize("path", ["/projects", "/audit-logs", "/users", "/quotas", "/projects/library/repositories",
                                  "/labels", "/repositories"])
def test_paging_out_of_range_is_refused(admin: httpx.Client, path: str, query: str) -> None:
    assert_refused(admin.get(f"{API}{path}?{query}"), 400)


@pytest.mark.parametrize("name_or_id", ["²", "¹²", HUGE, PAST_INT64, "-1", "٣"])
def test_project_name_or_id_that_is_no_64_bit_id_is_a_name(admin: httpx.Client, name_or_id: str) -> None:
    # '²'.isdigit() is True, int('²') raises: a lookup by id must not be attempted
    assert_refused(admin.get(f"{API}/projects/{name_or_id}"), 404)
    assert_refused(admin.get(f"{API}/projects/{name_or_id}/summary"), 404)


@pytest.mark.parametrize("path,q", [
    ("/users", "user_id=[²~5]"),
    ("/users", "user_id=[1~²]"),
    ("/projects", "project_id=[¹~9]"),
    ("/robots", "ProjectID=²"),
    ("/robots", f"ProjectID={HUGE}"),
    ("/audit-logs", "op_time=[99999999999999999~]"),
    ("/audit-logs", f"op_time=[{HUGE}~]"),
    ("/audit-logs", "op_time=[0001-01-01T00:00:00+01:00~]"),
    ("/audit-logs", "op_time=[~9999-12-31T23:59:59-01:00]"),
    ("/audit-logs", "op_time=²"),
    ("/projects/library/artifacts", "labels=²"),
    ("/projects/library/artifacts", "labels=(1 ²)"),
])
def test_q_values_that_are_no_numbers_or_times_are_refused(admin: httpx.Client, path: str, q: str) -> None:
    assert_refused(admin.get(API + path, params={"q": q}), 400)


def test_numeric_filters_still_work(admin: httpx.Client) -> None:
    r = admin.get(f"{API}/users", params={"q": "user_id=[1~1]"})
    assert r.status_code == 200 and [u["username"] for u in r.json()] == ["admin"]
    assert admin.get(f"{API}/quotas", params={"reference_id": "²"}).json() == []
    assert admin.get(f"{API}/audit-logs", params={"q": "op_time=[1~4102444800]"}).status_code == 200


def test_numbers_beyond_64_bits_in_bodies_are_refused(admin: httpx.Client, project_name: str) -> None:
    r = admin.post(f"{API}/projects", json={"project_name": project_name, "storage_limit": int(HUGE)})
    assert_refused(r, 400)
    r = admin.post(f"{API}/projects", json={"project_name": project_name, "storage_limit": 2**63})
    assert_refused(r, 400)
    assert admin.post(f"{API}/projects", json={"project_name": project_name}).status_code == 201
    project_id = admin.get(f"{API}/projects/{project_name}").json()["project_id"]
    assert_refused(admin.put(f"{API}/quotas/{project_id}", json={"hard": {"storage": int(HUGE)}}), 400)
    assert_refused(admin.put(f"{API}/projects/{project_name}", json={"storage_limit": int(HUGE)}), 400)
    for user_id in (int(HUGE), 2**31):
        r = admin.post(f"{API}/projects/{project_name}/members",
                       json={"role_id": 1, "member_user": {"user_id": user_id}})
        assert_refused(r, 400)
    permissions = [{"kind": "project", "namespace": project_name,
                    "access": [{"resource": "repository", "action": "pull"}]}]
    for duration in (2**31, 2**31 - 1):  # beyond the column, beyond the dates datetime can hold
        r = admin.post(f"{API}/robots", json={"name": project_name, "level": "system", "duration": duration,
                                              "permissions": permissions})
        assert_refused(r, 400)
    r = admin.post(f"{API}/robots", json={"name": project_name, "level": "system", "duration": 30,
                                          "permissions": permissions})
    assert r.status_code == 201, r.text


def test_deeply_nested_manifest_is_manifest_invalid(client: httpx.Client, repo: str) -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    r = client.put(f"/v2/{repo}/manifests/v1", content=body,
                   headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["code"] == "MANIFEST_INVALID"
    nested = b'{"schemaVersion": 2, "annotations": {"a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}}"
    r = client.put(f"/v2/{repo}/manifests/v1", content=nested,
                   headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["code"] == "MANIFEST_INVALID"


@pytest.mark.parametrize("method,path,kwargs", [
    ("GET", "/audit-logs", {"params": {"q": "username=~a\x00b"}}),
    ("GET", "/audit-logs", {"params": {"q": "username=~a%00b"}}),  # q is decoded once more
    ("GET", "/search", {"params": {"q": "a\x00"}}),
    ("GET", "/projects/library/repositories/a%00b", {}),
    ("GET", "/projects/library/repositories/a%252500b", {}),  # names are decoded up to three times
    ("GET", "/projects/library/repositories/a/artifacts/v%00", {}),
    ("PUT", "/projects/library/repositories/nothing", {"json": {"description": "a\x00b"}}),
    ("POST", "/users", {"json": {"username": "nul", "email": "nul@example.com", "realname": "x\x00",
                                 "password": "Passw0rd-1"}}),
    ("POST", "/projects", {"json": {"project_name": "nul", "metadata": {"public": "false", "k\x00": "v"}}}),
    ("PUT", "/projects/library/repositories/nothing",
     {"content": b'{"description": "\\ud800"}', "headers": {"content-type": "application/json"}}),
    ("POST", "/users", {"content": b'{"username": "sur", "realname": ["\\udfff"]}'}),
])
def test_text_no_database_can_store_is_refused(admin: httpx.Client, method: str, path: str,
                                                kwargs: dict[str, Any]) -> None:
    # PostgreSQL refuses NUL in text; a lone surrogate cannot be encoded as UTF-8 at all
    r = admin.request(method, API + path, **kwargs)
    assert_refused(r, 400)
    assert "NUL" in r.json()["errors"][0]["message"]


def test_portal_sign_in_with_a_nul_is_refused(anon: httpx.Client) -> None:
    r = anon.post("/c/login", data={"principal": "adm\x00in", "password": "x"})
    assert_refused(r, 400)
