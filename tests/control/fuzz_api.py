"""The schemathesis run of tests/control/test_schemathesis.py, in a process of its own.

``python -m tests.control.fuzz_api`` reads ``{"base_url", "spec", "call_ids"}`` as JSON on
stdin and prints ``{"failures": [...]}``. A process of its own because hypothesis and
schemathesis parse Python source at run time (lambda descriptions, lazily imported modules
that pytest rewrites), and CPython 3.11's AST builder keeps one recursion depth for all
threads: parsed in a thread beside the test's event loop, it failed now and then with
"SystemError: AST constructor recursion depth mismatch" (CPython gh-106905).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import hypothesis
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import strategies as st


def fuzz(
    base_url: str, spec: dict[str, Any], call_ids: list[str], auth: dict[str, str]
) -> list[str]:
    """Every operation of ``spec`` against ``base_url``, with and without ``auth``; returns
    the failures (a 5xx, or too little of the API reached)."""
    schema = schemathesis.openapi.from_dict(spec)
    failures: list[str] = []
    seen: list[int] = []
    live_posts: list[str] = []  # POSTs the live call accepted
    strategies = []
    for result in schema.get_all_operations():
        op = result.ok()
        if op.path == "/v1/events":
            continue  # an endless stream; covered by test_live_calls
        strategies.append(op.as_strategy())

    @hypothesis.settings(
        max_examples=300,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
    )
    @given(
        case=st.one_of(strategies),
        authed=st.booleans(),
        real_id=st.one_of(st.none(), st.sampled_from(call_ids)),
    )
    def run(case: Any, authed: bool, real_id: str | None) -> None:
        if real_id and case.path_parameters and "call_id" in case.path_parameters:
            case.path_parameters["call_id"] = real_id
        headers = dict(auth) if authed else {}
        response = case.call(base_url=base_url, headers=headers, timeout=20)
        seen.append(response.status_code)
        if real_id == call_ids[-1] and response.status_code == 200 and case.method == "POST":
            live_posts.append(case.path)
        if response.status_code >= 500:
            failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}")
            failures.append(response.text[:500])

    run()
    if len(seen) < 100 or not {200, 401, 404, 422} <= set(seen):
        failures.append(f"too little of the API reached: statuses {sorted(set(seen))}")
    if not live_posts:
        failures.append("the live call was never driven")
    return failures


def main() -> None:
    job = json.load(sys.stdin)
    failures = fuzz(job["base_url"], job["spec"], job["call_ids"], job["auth"])
    sys.stdout.write(json.dumps({"failures": failures}) + "\n")


if __name__ == "__main__":
    main()
