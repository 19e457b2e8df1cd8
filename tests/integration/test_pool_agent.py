"""The pool agent with a fake `vllm` and the real Redis: launch, stop, crash, refuse."""

from __future__ import annotations

import asyncio
import json
import os
import signal

import aiohttp
import pytest

from inference.pool.agent import run_agent
from inference.pool.argv import LaunchRequest
from inference.pool.gpus import GpuPool, free_port
from tests.conftest import REDIS_URL
from tests.pool_support import AUTH, agent, events, gone, read, records, served


async def test_launch_serves_the_model_with_its_draft_config_until_shutdown(
    redis_prefix, tmp_path, vllm, client
):
    pubsub = client.redis.pubsub()
    await pubsub.subscribe(client.keys.events)
    targets_file = tmp_path / "targets.json"
    async with agent(redis_prefix, tmp_path, vllm, targets_file=targets_file) as pool:
        request = LaunchRequest(model_id="qwen", target="Qwen/Qwen3-8B", draft="Qwen/Qwen3-0.6B",
                                k=5, gpus=2)
        request_id = await client.launch(request)
        launching, ready = await events(client, request_id)
        assert (launching["state"], ready["state"]) == ("launching", "ready")
        assert ready["host"] == "gpu1" and ready["gpus"] == [0, 1]
        assert ready["base_url"].startswith("http://127.0.0.1:")
        assert ready["base_url"].endswith("/v1")
        assert await served(ready["base_url"]) == ["qwen"]

        [run] = records(tmp_path)
        assert run["cuda_visible_devices"] == "0,1"
        argv = run["argv"]
        assert argv[:2] == ["serve", "Qwen/Qwen3-8B"]
        assert json.loads(argv[argv.index("--speculative-config") + 1]) == {
            "method": "draft_model", "model": "Qwen/Qwen3-0.6B", "num_speculative_tokens": 5}
        assert argv[argv.index("--tensor-parallel-size") + 1] == "2"
        assert argv[argv.index("--max-num-queued-reqs") + 1] == "64"
        assert argv[argv.index("--served-model-name") + 1] == "qwen"

        [replica] = await client.replicas()
        port = int(ready["base_url"].rsplit(":", 1)[1].removesuffix("/v1"))
        assert replica == pool.replicas()[0]
        assert replica["base_url"] == ready["base_url"] and replica["state"] == "ready"
        assert replica["speculative_config"]["num_speculative_tokens"] == 5
        assert replica["gpus"] == [0, 1] and replica["host"] == "gpu1"
        assert replica["pid"] == ready["pid"] and replica["port"] == port
        assert await client.redis.hexists(client.keys.replicas, f"qwen@gpu1:{port}")
        [target] = json.loads(read(targets_file))
        assert target == {"targets": [f"127.0.0.1:{port}"], "labels": {
            "model_id": "qwen", "host": "gpu1", "served_name": "qwen"}}
        [beat] = await client.agents()
        assert beat["host"] == "gpu1" and beat["gpus"] == [0, 1, 2]
        assert "CUDA_VISIBLE_DEVICES=0,1" in read(replica["log"])

        published = []
        while len(published) < 2:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is not None:
                published.append(AUTH.open_json("event", message["data"]))
        assert [e["state"] for e in published] == ["launching", "ready"]
    # Shutting the agent down stops its servers and clears the registry.
    assert gone(ready["pid"])
    assert await client.replicas() == [] and await client.agents() == []
    assert json.loads(read(targets_file)) == []
    [stopped] = await events(client, request_id, after=ready["event_id"])
    assert stopped["state"] == "stopped" and "shutting down" in stopped["detail"]
    await pubsub.aclose()


async def test_a_launch_that_needs_more_gpus_than_are_free_fails_clearly(
    redis_prefix, tmp_path, vllm, client
):
    async with agent(redis_prefix, tmp_path, vllm) as pool:
        first = await events(client, await client.launch(
            LaunchRequest(model_id="a", target="org/a", gpus=2)))
        assert first[-1]["state"] == "ready"
        [failed] = await events(client, await client.launch(
            LaunchRequest(model_id="b", target="org/b", gpus=2)))
        assert failed["state"] == "failed" and failed["model_id"] == "b"
        assert failed["detail"] == ("no free GPUs on gpu1: 2 needed, 1 free of 3; "
                                    "no other pool agent took it")
        [named] = await events(client, await client.launch(
            LaunchRequest(model_id="c", target="org/c", gpus=2), host="gpu1"))
        assert named["detail"] == "no free GPUs on gpu1: 2 needed, 1 free of 3"
        [more] = await events(client, await client.launch(
            LaunchRequest(model_id="d", target="org/d", gpus=4), host="gpu1"))
        assert more["detail"] == "gpu1 has 3 GPU(s); 4 were asked for"
        [unnamed] = await events(client, await client.launch(
            LaunchRequest(model_id="e", target="org/e", gpus=4)))
        assert unnamed["detail"] == ("gpu1 has 3 GPU(s); 4 were asked for; no other pool "
                                     "agent took it")
        assert pool.gpus.free == [2] and len(records(tmp_path)) == 1


async def test_stop_ends_the_server_and_frees_its_gpus(redis_prefix, tmp_path, vllm, client):
    async with agent(redis_prefix, tmp_path, vllm) as pool:
        ready = (await events(client, await client.launch(
            LaunchRequest(model_id="m", target="org/m", gpus=2))))[-1]
        assert pool.gpus.free == [2]
        [stopped] = await events(client, await client.stop("m"))
        assert stopped["state"] == "stopped" and stopped["base_url"] == ready["base_url"]
        assert gone(ready["pid"])
        assert pool.gpus.free == [0, 1, 2]
        assert await client.replicas() == [] and pool.replicas() == []
        with pytest.raises(aiohttp.ClientError):
            await served(ready["base_url"])
        [nothing] = await events(client, await client.stop("m", host="gpu1"))
        assert nothing["state"] == "failed" and nothing["detail"] == "gpu1 runs no replica of m"


async def test_a_server_that_ignores_sigterm_is_killed(
    redis_prefix, tmp_path, vllm, client, monkeypatch
):
    monkeypatch.setenv("FAKE_VLLM_IGNORE_SIGTERM", "1")
    async with agent(redis_prefix, tmp_path, vllm, stop_timeout=0.3):
        ready = (await events(client, await client.launch(
            LaunchRequest(model_id="m", target="org/m"))))[-1]
        assert (await events(client, await client.stop("m")))[0]["state"] == "stopped"
        assert gone(ready["pid"])


async def test_stopping_a_server_that_is_still_starting_fails_its_launch(
    redis_prefix, tmp_path, vllm, client, monkeypatch
):
    monkeypatch.setenv("FAKE_VLLM_STARTUP_DELAY", "30")
    async with agent(redis_prefix, tmp_path, vllm) as pool:
        launch_id = await client.launch(LaunchRequest(model_id="slow", target="org/slow"))
        async for event in client.events(launch_id, 10):
            assert event["state"] == "launching"
            break
        [stopped] = await events(client, await client.stop("slow"))
        assert stopped["state"] == "stopped"
        launch = await events(client, launch_id)
        assert [e["state"] for e in launch] == ["launching", "failed"]
        assert launch[-1]["detail"].startswith("stopped before it was ready")
        assert gone(launch[0]["pid"]) and pool.gpus.free == [0, 1, 2]


async def test_a_server_not_ready_in_time_is_stopped_and_fails(
    redis_prefix, tmp_path, vllm, client, monkeypatch
):
    monkeypatch.setenv("FAKE_VLLM_STARTUP_DELAY", "30")
    async with agent(redis_prefix, tmp_path, vllm, ready_timeout=0.5) as pool:
        launch = await events(client, await client.launch(
            LaunchRequest(model_id="slow", target="org/slow")))
        assert [e["state"] for e in launch] == ["launching", "failed"]
        assert launch[-1]["detail"] == "vllm was not ready after 0.5s"
        assert gone(launch[0]["pid"]) and pool.gpus.free == [0, 1, 2]


async def test_a_crashed_server_is_restarted_on_the_same_port(
    redis_prefix, tmp_path, vllm, client, monkeypatch
):
    monkeypatch.setenv("FAKE_VLLM_CRASH_AFTER", "0.5")
    monkeypatch.setenv("FAKE_VLLM_CRASH_ONCE", str(tmp_path / "crashed"))
    async with agent(redis_prefix, tmp_path, vllm):
        request_id = await client.launch(LaunchRequest(model_id="m", target="org/m", gpus=2))
        ready = (await events(client, request_id))[-1]
        assert ready["state"] == "ready"
        restarting, again = await events(client, request_id, after=ready["event_id"])
        assert (restarting["state"], again["state"]) == ("restarting", "ready")
        assert restarting["detail"] == "vllm exited with code 1; restart 1/2 in 0.1s"
        assert again["base_url"] == ready["base_url"] and again["pid"] != ready["pid"]
        assert again["gpus"] == [0, 1]
        assert await served(ready["base_url"]) == ["m"]
        assert [r["cuda_visible_devices"] for r in records(tmp_path)] == ["0,1", "0,1"]
        [replica] = await client.replicas()
        assert replica["state"] == "ready" and replica["pid"] == again["pid"]


async def test_a_server_that_keeps_crashing_is_given_up(
    redis_prefix, tmp_path, vllm, client, monkeypatch
):
    monkeypatch.setenv("FAKE_VLLM_CRASH_AFTER", "0.2")
    async with agent(redis_prefix, tmp_path, vllm, restart_backoff=(0.05,)) as pool:
        request_id = await client.launch(LaunchRequest(model_id="m", target="org/m"))
        ready = (await events(client, request_id))[-1]
        after = await events(client, request_id, after=ready["event_id"])
        after += await events(client, request_id, after=after[-1]["event_id"])
        assert [e["state"] for e in after] == ["restarting", "ready", "failed"]
        assert after[-1]["detail"] == "vllm exited with code 1; gave up after 1 restarts"
        assert pool.gpus.free == [0, 1, 2] and await client.replicas() == []


async def test_a_server_that_cannot_start_fails_with_its_log(
    redis_prefix, tmp_path, vllm, client, monkeypatch
):
    monkeypatch.setenv("FAKE_VLLM_FAIL_START", "1")
    async with agent(redis_prefix, tmp_path, vllm) as pool:
        launch = await events(client, await client.launch(
            LaunchRequest(model_id="bad", target="org/does-not-exist")))
        assert [e["state"] for e in launch] == ["launching", "failed"]
        detail = launch[-1]["detail"]
        assert detail.startswith("vllm exited with code 1 before it was ready; last log lines:")
        assert "org/does-not-exist is not a local folder" in detail
        assert pool.gpus.free == [0, 1, 2] and await client.replicas() == []


async def test_bad_commands_fail_and_a_missing_vllm_is_reported(
    redis_prefix, tmp_path, vllm, client
):
    async with agent(redis_prefix, tmp_path, vllm):
        command = {"op": "launch", "request_id": "1-abc", "model_id": "m", "target": "org/m",
                   "k": 0}
        await client.redis.xadd(client.keys.commands, AUTH.seal("command", command))
        [failed] = await events(client, "1-abc")
        assert failed["state"] == "failed" and "k must be an integer" in failed["detail"]
    async with agent(redis_prefix, tmp_path, str(tmp_path / "no-vllm")):
        [failed] = await events(client, await client.launch(
            LaunchRequest(model_id="m", target="org/m")))
        assert failed["detail"].startswith(f"cannot start {tmp_path / 'no-vllm'}:")


async def test_agents_take_commands_for_their_host_and_claim_the_others_once(
    redis_prefix, tmp_path, vllm, client
):
    async with (agent(redis_prefix, tmp_path, vllm, host="gpu1") as one,
                agent(redis_prefix, tmp_path, vllm, host="gpu2") as two):
        # Named for a host that does not exist: nobody acts.
        assert await events(client, await client.launch(
            LaunchRequest(model_id="x", target="org/x"), host="gpu9"), wait=1) == []
        named = await events(client, await client.launch(
            LaunchRequest(model_id="y", target="org/y"), host="gpu2"))
        assert named[-1]["state"] == "ready" and named[-1]["host"] == "gpu2"
        assert one.replicas() == [] and len(two.replicas()) == 1
        # Not named: exactly one agent claims and launches it.
        request_id = await client.launch(LaunchRequest(model_id="z", target="org/z"))
        ready = (await events(client, request_id))[-1]
        await asyncio.sleep(0.5)  # the other agent would have launched by now
        assert {r["host"] for r in await client.replicas() if r["model_id"] == "z"} == {
            ready["host"]}
        assert await client.redis.get(client.keys.claim(request_id)) == ready["host"].encode()
        assert len(records(tmp_path)) == 2


async def test_a_restarted_agent_drops_its_stale_replicas(redis_prefix, tmp_path, vllm, client):
    # A server left running by an agent that died, and one whose process is gone.
    port = free_port()
    left = await asyncio.create_subprocess_exec(
        vllm, "serve", "org/old", "--port", str(port), start_new_session=True,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    running = {"model_id": "old", "host": "gpu1", "port": port, "pid": left.pid,
               "request_id": "9-abc", "base_url": f"http://127.0.0.1:{port}/v1", "gpus": [0]}
    dead = {**running, "port": 1, "pid": None, "request_id": "9-def"}
    other = {**running, "host": "gpu2"}
    await client.redis.hset(client.keys.replicas, mapping={
        f"old@gpu1:{port}": AUTH.seal_json("replica", running),
        "old@gpu1:1": AUTH.seal_json("replica", dead),
        f"old@gpu2:{port}": AUTH.seal_json("replica", other)})
    async with agent(redis_prefix, tmp_path, vllm):
        assert await client.replicas() == [other]
        assert await asyncio.wait_for(left.wait(), 5) == -signal.SIGKILL
        [killed] = await events(client, "9-abc")
        assert killed["state"] == "stopped"
        assert killed["detail"] == "the pool agent restarted; killed its server"
        [event] = await events(client, "9-def")
        assert event["state"] == "stopped" and event["detail"] == "the pool agent restarted"


async def test_run_agent_stops_its_servers_on_sigterm(redis_prefix, tmp_path, vllm, client):
    with pytest.raises(ValueError, match="not found"):
        await run_agent(REDIS_URL, redis_prefix, [0], str(tmp_path / "missing-vllm"), auth=AUTH)
    task = asyncio.create_task(run_agent(
        REDIS_URL, redis_prefix, [0, 1], vllm, auth=AUTH, host_name="gpu7", poll_interval=0.05,
        log_dir=tmp_path / "logs"))
    for _ in range(250):  # until its first heartbeat: it reads commands from then on
        if await client.agents():
            break
        await asyncio.sleep(0.02)
    ready = (await events(client, await client.launch(
        LaunchRequest(model_id="m", target="org/m"))))[-1]
    assert ready["state"] == "ready" and ready["host"] == "gpu7"
    os.kill(os.getpid(), signal.SIGTERM)  # run_agent's handler turns it into a clean stop
    await asyncio.wait_for(task, 15)
    assert gone(ready["pid"]) and await client.replicas() == []


async def test_a_cpu_agent_sets_no_cuda_devices_and_runs_one_slot_per_server(
    redis_prefix, tmp_path, vllm, client
):
    async with agent(redis_prefix, tmp_path, vllm, gpus=GpuPool.cpu(1)) as pool:
        [beat] = await client.agents()
        assert beat["device"] == "cpu" and beat["max_tensor_parallel"] == 1
        [refused] = await events(client, await client.launch(
            LaunchRequest(model_id="big", target="org/big", gpus=2), host="gpu1"))
        assert refused["detail"] == ("gpu1 is a CPU host: one server takes one slot (gpus=1); "
                                     "2 were asked for")
        launch = await events(client, await client.launch(
            LaunchRequest(model_id="m", target="org/m")))
        assert launch[0]["detail"].startswith("vllm serve org/m on the CPU (pid ")
        assert launch[-1]["state"] == "ready"
        [run] = records(tmp_path)
        assert run["cuda_visible_devices"] is None
        [full] = await events(client, await client.launch(
            LaunchRequest(model_id="n", target="org/n"), host="gpu1"))
        assert full["detail"] == "no free CPU slots on gpu1: 1 needed, 0 free of 1"
        assert pool.gpus.free == []
