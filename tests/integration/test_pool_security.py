"""The pool agent obeys only the bot (issue 10): commands and registry entries are signed with
POOL_SECRET; anything unsigned, forged, expired or replayed is ignored and logged; launch
options are a closed set; local models stay under the agent's directory; remote code runs only
where the agent allows it, and never sees the agent's secrets."""

from __future__ import annotations

import asyncio
import json
import logging
import signal

from inference.pool.argv import LaunchRequest
from inference.pool.protocol import PoolAuth, new_request_id
from tests.pool_support import AUTH, agent, events, records

LAUNCH = {"op": "launch", "host": None, "model_id": "m", "target": "org/m", "k": 4, "gpus": 1}


async def command_id(client) -> str:
    sec, usec = await client.redis.time()
    return new_request_id(sec * 1000 + usec // 1000)


async def test_unsigned_forged_and_expired_commands_are_ignored(
    redis_prefix, tmp_path, vllm, client, caplog
):
    caplog.set_level(logging.WARNING, logger="inference.pool")
    async with agent(redis_prefix, tmp_path, vllm) as pool:
        unsigned, forged, expired = [await command_id(client) for _ in range(3)]
        await client.redis.xadd(client.keys.commands,
                                {"data": json.dumps({**LAUNCH, "request_id": unsigned})})
        other = PoolAuth("not-the-pool-secret-0123456789")
        await client.redis.xadd(client.keys.commands,
                                other.seal("command", {**LAUNCH, "request_id": forged}))
        old = PoolAuth(AUTH._key, clock=lambda: 1_000_000.0)  # sealed long ago
        await client.redis.xadd(client.keys.commands,
                                old.seal("command", {**LAUNCH, "request_id": expired}))
        # An event sealed like a command (another kind) is not a command either.
        as_event = await command_id(client)
        await client.redis.xadd(client.keys.commands,
                                AUTH.seal("event", {**LAUNCH, "request_id": as_event}))
        # A genuine command after them is handled: the ones before were read and dropped.
        genuine = await client.launch(LaunchRequest(model_id="ok", target="org/ok"))
        assert (await events(client, genuine))[-1]["state"] == "ready"
        for request_id in (unsigned, forged, expired, as_event):
            assert await events(client, request_id, wait=0.2) == []
        assert [r["argv"][1] for r in records(tmp_path)] == ["org/ok"]
        assert len(pool.replicas()) == 1
    ignored = [r.getMessage() for r in caplog.records if "ignored command" in r.getMessage()]
    assert len(ignored) == 4
    assert {m.rsplit("(", 1)[1] for m in ignored} == {"unsigned)", "bad signature)",
                                                      "expired)"}


async def test_a_replayed_command_is_acted_on_once(redis_prefix, tmp_path, vllm, client, caplog):
    caplog.set_level(logging.WARNING, logger="inference.pool")
    async with agent(redis_prefix, tmp_path, vllm) as pool:
        request_id = await client.launch(LaunchRequest(model_id="m", target="org/m"))
        assert (await events(client, request_id))[-1]["state"] == "ready"
        entries = await client.redis.xrange(client.keys.commands)
        _, fields = entries[-1]
        await client.redis.xadd(client.keys.commands, fields)  # the same signed bytes again
        stop_id = await client.stop("m")
        await events(client, stop_id)
        await asyncio.sleep(0.3)
        assert len(records(tmp_path)) == 1 and pool.replicas() == []
    assert any(f"replayed launch command {request_id}" in r.getMessage()
               for r in caplog.records)


async def test_launch_options_outside_the_closed_set_fail_the_launch(
    redis_prefix, tmp_path, vllm, client
):
    """Even a signed command cannot pass vLLM a flag: there is no field for it."""
    async with agent(redis_prefix, tmp_path, vllm):
        for extra, detail in [
            ({"extra_args": ["--trust-remote-code"]}, "unknown launch option 'extra_args'"),
            ({"target": "../../etc"}, "target must be a Hugging Face repo id"),
            ({"draft": "../../root"}, "draft must be a Hugging Face repo id"),
            ({"target": "-tp"}, "target must be"),
        ]:
            request_id = await command_id(client)
            await client.redis.xadd(client.keys.commands,
                                    AUTH.seal("command", {**LAUNCH, **extra,
                                                          "request_id": request_id}))
            [failed] = await events(client, request_id)
            assert failed["state"] == "failed" and detail in failed["detail"], failed
        assert not (tmp_path / "record.jsonl").exists()  # no vllm was started


async def test_local_models_only_under_the_models_directory(redis_prefix, tmp_path, vllm, client):
    models = tmp_path / "models"
    (models / "llama").mkdir(parents=True)
    (tmp_path / "private").mkdir()
    (models / "escape").symlink_to(tmp_path / "private")
    async with agent(redis_prefix, tmp_path, vllm, models_dir=models):
        for target in (str(tmp_path / "private"), str(models / "escape")):
            [failed] = await events(client, await client.launch(
                LaunchRequest(model_id="x", target=target), host="gpu1"))
            assert failed["state"] == "failed"
            assert failed["detail"] == (f"{target} is not under this agent's models "
                                        f"directory {models}")
        ready = (await events(client, await client.launch(
            LaunchRequest(model_id="llama", target=str(models / "llama")))))[-1]
        assert ready["state"] == "ready"
    async with agent(redis_prefix, tmp_path, vllm):  # no models directory: repo ids only
        [failed] = await events(client, await client.launch(
            LaunchRequest(model_id="y", target=str(models / "llama"))))
        assert "this agent takes only Hugging Face repo ids" in failed["detail"]
        assert failed["detail"].endswith("; no other pool agent took it")


async def test_remote_code_only_where_the_agent_allows_it_and_without_its_secrets(
    redis_prefix, tmp_path, vllm, client, monkeypatch
):
    monkeypatch.setenv("POOL_SECRET", "the-agent-secret-0123456789")
    monkeypatch.setenv("REDIS_URL", "redis://:password@127.0.0.1:6379/0")
    async with agent(redis_prefix, tmp_path, vllm, trust_remote_code={"org/trusted"},
                     env_drop={"POOL_SECRET", "REDIS_URL"}):
        [failed] = await events(client, await client.launch(
            LaunchRequest(model_id="a", target="org/untrusted", trust_remote_code=True)))
        assert failed["detail"].startswith("trust_remote_code is not allowed for org/untrusted "
                                           "on gpu1")
        [failed] = await events(client, await client.launch(LaunchRequest(
            model_id="b", target="org/trusted", draft="org/untrusted", trust_remote_code=True)))
        assert "not allowed for org/untrusted" in failed["detail"]
        ready = (await events(client, await client.launch(
            LaunchRequest(model_id="c", target="org/trusted", trust_remote_code=True))))[-1]
        assert ready["state"] == "ready"
        [run] = records(tmp_path)
        assert "--trust-remote-code" in run["argv"]
        assert "POOL_SECRET" not in run["env"] and "REDIS_URL" not in run["env"]
        assert "PATH" in run["env"]
        assert run["cwd"] != str(tmp_path) and list((tmp_path / "logs").iterdir())


async def test_a_forged_replica_entry_is_dropped_not_acted_on(redis_prefix, tmp_path, vllm,
                                                             client):
    victim = await asyncio.create_subprocess_exec("sleep", "30", start_new_session=True)
    forged = {"model_id": "x", "host": "gpu1", "port": 1, "pid": victim.pid,
              "request_id": "1-abc", "base_url": "http://evil:1/v1", "gpus": [0]}
    await client.redis.hset(client.keys.replicas, "x@gpu1:1", json.dumps(forged))
    try:
        async with agent(redis_prefix, tmp_path, vllm):
            assert await client.redis.hgetall(client.keys.replicas) == {}
            assert victim.returncode is None  # not killed
            assert await events(client, "1-abc", wait=0.3) == []
    finally:
        victim.send_signal(signal.SIGKILL)
        await victim.wait()
