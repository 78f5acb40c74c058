#!/usr/bin/env python3
"""Runs Slack's official Python SDK (slack_sdk, from PyPI) against the emulator.

The emulator's responses must be ones Slack documents, so the official SDK parses them
unchanged: its envelope and error handling (SlackApiError), cursor pagination (iterating a
SlackResponse follows next_cursor), its rate-limit retry handler (Retry-After), and its
SCIM models. The SDK's SCIM client speaks SCIM 1.1 for writes, so only its readers are
used against our SCIM 2.0 endpoints; their list envelope and user shape are shared.

Usage: python_sdk_check.py PATH/TO/slack-gitops examples/acme/slack.json
Prints one line per check and a closing "N passed, M failed" line; exits 1 on failure.
"""

import json
import subprocess
import sys
import traceback
import urllib.request

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.scim import SCIMClient

ADMIN, READONLY = "xoxp-acme-admin", "xoxp-acme-readonly"
MAIN = "T0000MAIN"


def control(base, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{base}/_emulator/{path}", data=data, method=method,
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request) as response:
        text = response.read()
        return json.loads(text) if text else None


def main():
    binary, seed = sys.argv[1], sys.argv[2]
    emulator = subprocess.Popen([binary, "emulator", "--seed", seed, "--listen", "127.0.0.1:0"],
                                stdout=subprocess.PIPE, text=True)
    try:
        line = emulator.stdout.readline()
        base = "http://" + line.split("http://")[1].split()[0]
        return run_checks(base)
    finally:
        emulator.terminate()
        emulator.wait()


def run_checks(base):
    state = control(base, "GET", "state")
    main_members = [u["id"] for u in state["users"] if MAIN in u["workspaces"]]
    web = WebClient(token=ADMIN, base_url=f"{base}/api/")
    checks = []

    def check(function):
        checks.append(function)
        return function

    @check
    def auth_test():
        response = web.auth_test()
        assert response["ok"] and response["user_id"] == state["tokens"][0]["user"]
        assert response["enterprise_id"] == "E0000ACME"

    @check
    def users_list_paginates_to_the_end():
        seen = []
        for page in web.users_list(team_id=MAIN, limit=100):
            seen.extend(member["id"] for member in page["members"])
        assert sorted(seen) == sorted(main_members), (len(seen), len(main_members))
        assert len(seen) == len(set(seen))

    @check
    def users_info_and_lookup():
        user = state["users"][10]
        info = web.users_info(user=user["id"])
        assert info["user"]["profile"]["email"] == user["email"]
        found = web.users_lookupByEmail(email=user["email"])
        assert found["user"]["id"] == user["id"]

    @check
    def usergroups_with_users():
        response = web.usergroups_list(team_id=MAIN, include_users=True, include_disabled=True)
        groups = {g["handle"]: g for g in response["usergroups"]}
        assert "eng" in groups and groups["eng"]["users"], groups.keys()
        members = web.usergroups_users_list(usergroup=groups["eng"]["id"], team_id=MAIN)
        assert members["users"] == groups["eng"]["users"]

    @check
    def usergroups_users_update_cannot_empty_a_group():
        group = web.usergroups_list(team_id=MAIN, include_users=True)["usergroups"][0]
        try:
            web.usergroups_users_update(usergroup=group["id"], users=[], team_id=MAIN)
        except SlackApiError as error:
            assert error.response["error"] == "no_users_provided", error.response
        else:
            raise AssertionError("an empty usergroup update succeeded")
        updated = web.usergroups_users_update(usergroup=group["id"], users=group["users"][:2],
                                              team_id=MAIN)
        assert updated["usergroup"]["users"] == group["users"][:2]

    @check
    def conversations_paginate_through_short_pages():
        # Private channels are listed only to members: the bot is in them, the admin is not.
        bot = WebClient(token="xoxb-acme-bot", base_url=f"{base}/api/")
        names = []
        for page in bot.conversations_list(team_id=MAIN, types="public_channel,private_channel",
                                           limit=2):
            names.extend(c["name"] for c in page["channels"])
        assert "general" in names and "eng-oncall" in names, names
        channel = next(c for c in state["channels"] if c["name"] == "general" and c["workspace"] == MAIN)
        members = []
        for page in web.conversations_members(channel=channel["id"], limit=50):
            members.extend(page["members"])
        assert members == channel["members"]

    @check
    def missing_scope_names_the_scope():
        readonly = WebClient(token=READONLY, base_url=f"{base}/api/")
        try:
            readonly.usergroups_create(name="nope", team_id=MAIN)
        except SlackApiError as error:
            assert error.response["error"] == "missing_scope"
            assert error.response["needed"] == "usergroups:write"
        else:
            raise AssertionError("an under-scoped token wrote")

    @check
    def retry_handler_honours_retry_after():
        control(base, "DELETE", "log")
        control(base, "POST", "faults", {"kind": "rate_limit", "retry_after": 1,
                                         "target": "auth.test", "count": 1})
        client = WebClient(token=ADMIN, base_url=f"{base}/api/",
                           retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=2)])
        assert client.auth_test()["ok"]
        statuses = [c["status"] for c in control(base, "GET", "log")["calls"]]
        assert statuses == [429, 200], statuses

    @check
    def admin_users_and_sessions():
        inactive = []
        for page in web.admin_users_list(is_active=False, limit=50):
            inactive.extend(u["id"] for u in page["users"])
        expected = [u["id"] for u in state["users"] if not u.get("active", True)]
        assert sorted(inactive) == sorted(expected), (inactive, expected)
        person = next(u for u in state["users"] if u["id"] == inactive[0])
        team = person["workspaces"][0]
        listed = web.admin_users_session_list(user_id=inactive[0], team_id=team)
        assert [s["user_id"] for s in listed["active_sessions"]] == [inactive[0]], listed
        assert web.admin_users_session_reset(user_id=inactive[0])["ok"]
        try:
            web.admin_users_session_list(user_id=inactive[0], team_id=team)
            raise AssertionError("sessions listed after a reset")
        except SlackApiError as error:
            assert error.response["error"] == "no_active_sessions", error.response

    @check
    def admin_roles_as_the_sdk_sends_them():
        # The SDK's own methods for restoring a role after a reactivation.
        person = next(
            u for u in state["users"]
            if u.get("active", True) and not u.get("bot") and not u.get("guest")
            and not u.get("primary_owner") and not u.get("admin") and MAIN in u.get("workspaces", [])
        )
        assert web.admin_users_setAdmin(team_id=MAIN, user_id=person["id"])["ok"]
        assert web.users_info(user=person["id"], team_id=MAIN)["user"]["is_admin"] is True
        assert web.admin_users_setRegular(team_id=MAIN, user_id=person["id"])["ok"]
        assert web.users_info(user=person["id"], team_id=MAIN)["user"]["is_admin"] is False

    @check
    def chat_post_message_as_the_sdk_sends_it():
        bot_token = next(t["token"] for t in state["tokens"] if t["kind"] == "bot")
        bot = WebClient(token=bot_token, base_url=f"{base}/api/")
        channel = next(c for c in state["channels"] if not c.get("archived")
                       and next(t["user"] for t in state["tokens"] if t["kind"] == "bot") in c.get("members", []))
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*digest*"}}]
        sent = bot.chat_postMessage(channel=channel["id"], text="digest", blocks=blocks)
        assert sent["ok"] and sent["channel"] == channel["id"] and sent["ts"]

    @check
    def integration_logs():
        logs = web.team_integrationLogs(team_id=MAIN)
        assert logs["paging"]["total"] == len(logs["logs"]) >= 3
        assert {"app_id", "user_id", "change_type", "date"} <= set(logs["logs"][0])

    @check
    def scim_models_parse_our_resources():
        scim = SCIMClient(token=ADMIN, base_url=f"{base}/scim/v2/")
        page = scim.search_users(count=100, start_index=1)
        assert page.status_code == 200
        assert len(page.users) == 100 and page.snake_cased_body["total_results"] == len(state["users"])
        first = page.users[0]
        assert first.id == state["users"][0]["id"]
        assert first.emails[0].value == state["users"][0]["email"]
        assert first.active is True
        one = scim.read_user(first.id)
        assert one.user.user_name == first.user_name
        groups = scim.search_groups(count=10, start_index=1)
        assert groups.groups[0].display_name == state["idp_groups"][0]["name"]

    passed = failed = 0
    for function in checks:
        try:
            function()
            passed += 1
            print(f"ok   {function.__name__}")
        except Exception:
            failed += 1
            print(f"FAIL {function.__name__}")
            traceback.print_exc()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
