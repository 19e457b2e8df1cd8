"""The vLLM command line, launch request checks and GPU bookkeeping of the pool (pure)."""

from __future__ import annotations

import json
import socket

import pytest

from inference.pool.argv import LaunchRequest, local_path_allowed, vllm_argv, vllm_command
from inference.pool.gpus import GpuPool, free_port, parse_gpus


def test_argv_with_a_draft_model_is_exactly_the_documented_command():
    request = LaunchRequest(model_id="qwen", target="Qwen/Qwen3-8B", draft="Qwen/Qwen3-0.6B",
                            k=3, gpus=2, max_queued=32)
    assert vllm_argv("/opt/vllm", request, 8123, "0.0.0.0") == [
        "/opt/vllm", "serve", "Qwen/Qwen3-8B", "--served-model-name", "qwen",
        "--port", "8123", "--host", "0.0.0.0", "--tensor-parallel-size", "2",
        "--max-num-queued-reqs", "32",
        "--speculative-config",
        '{"method": "draft_model", "model": "Qwen/Qwen3-0.6B", "num_speculative_tokens": 3}',
    ]


def test_argv_defaults_without_a_draft_and_the_optional_flags():
    request = LaunchRequest(model_id="m", target="/models/llama-3", served_name="org/served",
                            max_model_len=8192, dtype="bfloat16", trust_remote_code=True)
    argv = vllm_argv("vllm", request, 9000)
    assert "--speculative-config" not in argv
    assert argv[:3] == ["vllm", "serve", "/models/llama-3"]
    assert argv[3:] == ["--served-model-name", "org/served", "--port", "9000",
                        "--host", "127.0.0.1", "--tensor-parallel-size", "1",
                        "--max-num-queued-reqs", "64", "--max-model-len", "8192",
                        "--dtype", "bfloat16", "--trust-remote-code"]
    assert LaunchRequest(model_id="m", target="org/m").served_name == "m"
    no_queue = vllm_argv("vllm", LaunchRequest(model_id="m", target="o/m", max_queued=None), 1)
    assert "--max-num-queued-reqs" not in no_queue and "--trust-remote-code" not in no_queue


def test_a_request_survives_its_command_payload():
    request = LaunchRequest(model_id="m", target="org/m", draft="org/d", k=7, gpus=2)
    payload = {"op": "launch", "request_id": "r", "host": None, **request.to_dict()}
    assert LaunchRequest.from_dict(payload) == request
    assert json.loads(json.dumps(payload))["k"] == 7
    with pytest.raises(ValueError, match="bad launch request"):
        LaunchRequest.from_dict({"op": "launch", "model_id": "m"})


@pytest.mark.parametrize("extra", [
    {"extra_args": ["--trust-remote-code"]}, {"extra_args": ["-tp", "8"]},
    {"extra_args": ["--tensor_parallel_size=8"]}, {"extra_args": ["--hos=0.0.0.0"]},
    {"extra_args": ["--config", "/etc/x.yaml"]}, {"tensor_parallel_size": 8}, {"port": 1},
])
def test_launch_options_are_a_closed_set(extra):
    """No free-form vLLM flags, in any spelling: only the options LaunchRequest knows."""
    payload = {"op": "launch", "request_id": "r", "model_id": "m", "target": "org/m", **extra}
    with pytest.raises(ValueError, match=f"unknown launch option '{next(iter(extra))}'"):
        LaunchRequest.from_dict(payload)


@pytest.mark.parametrize(("bad", "message"), [
    ({"target": "org/m; rm -rf /"}, "target must be a Hugging Face repo id"),
    ({"target": "--trust-remote-code"}, "target must be"),
    ({"target": "-tp"}, "target must be"),
    ({"target": "../../etc"}, "target must be"),
    ({"target": "models/../../etc"}, "target must be"),
    ({"target": "/models/../etc"}, "target must be"),
    ({"target": "/models/./x"}, "target must be"),
    ({"target": "/models//x"}, "target must be"),
    ({"target": "org/a--b"}, "target must be"),
    ({"target": "a/b/c"}, "target must be"),
    ({"target": ".hidden/x"}, "target must be"),
    ({"draft": "a b"}, "draft must be"),
    ({"draft": "../root"}, "draft must be"),
    ({"served_name": "x y"}, "served_name must be"),
    ({"k": 0}, "k must be an integer between 1 and 32"),
    ({"k": 33}, "k must be"),
    ({"k": True}, "k must be"),
    ({"k": "4"}, "k must be"),
    ({"gpus": 0}, "gpus must be an integer between 1 and 64"),
    ({"gpus": 999}, "gpus must be an integer between 1 and 64"),
    ({"max_queued": 0}, "max_queued"),
    ({"max_model_len": 1}, "max_model_len must be"),
    ({"dtype": "int4"}, "dtype must be one of"),
    ({"trust_remote_code": "yes"}, "trust_remote_code must be true or false"),
    ({"model_id": "bad id"}, "model_id must be"),
    ({"model_id": "a" * 41}, "model_id must be"),
])
def test_bad_requests_are_refused_with_a_clear_message(bad, message):
    with pytest.raises(ValueError, match=message):
        LaunchRequest(**{"model_id": "m", "target": "org/m", **bad})


def test_good_model_references():
    for ref in ("Qwen/Qwen3-8B", "gpt2", "meta-llama/Llama-3.1-8B-Instruct", "org/v1.5_x",
                "/srv/models/llama-3", "/srv/models/org/Qwen3-8B"):
        assert LaunchRequest(model_id="m", target=ref).target == ref


def test_local_paths_must_resolve_under_the_models_directory(tmp_path):
    models = tmp_path / "models"
    (models / "llama").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    (models / "link").symlink_to(tmp_path / "secret")
    assert local_path_allowed(str(models / "llama"), str(models)) is None
    assert "only Hugging Face repo ids" in local_path_allowed(str(models / "llama"), None)
    assert "is not under" in local_path_allowed(str(tmp_path / "secret"), str(models))
    assert "is not under" in local_path_allowed(str(models / "link"), str(models))
    assert "is not a directory" in local_path_allowed(str(models / "nothing"), str(models))


def test_bad_port_is_refused():
    with pytest.raises(ValueError, match="port"):
        vllm_argv("vllm", LaunchRequest(model_id="m", target="org/m"), 0)


def test_gpu_pool_allocates_lowest_first_and_releases():
    pool = GpuPool([3, 0, 1])
    assert pool.allocate(2) == [0, 1]
    assert pool.allocate(2) is None and pool.free == [3]
    pool.release([0])
    assert pool.free == [0, 3]
    assert pool.allocate(2) == [0, 3] and pool.free == []
    with pytest.raises(ValueError, match="not allocated"):
        pool.release([7])
    pool.release([0, 1, 3])
    with pytest.raises(ValueError, match="not allocated"):
        pool.release([0])
    with pytest.raises(ValueError):
        pool.allocate(0)
    with pytest.raises(ValueError, match="duplicate"):
        GpuPool([0, 0])


def test_parse_gpus():
    assert parse_gpus("0,1,3") == [0, 1, 3]
    assert parse_gpus(" 0, 2,3 ") == [0, 2, 3]
    assert parse_gpus("0-3,6") == [0, 1, 2, 3, 6]
    for bad in ("", "a,b", "1,1", "-1", "0-x"):
        with pytest.raises(ValueError, match="--gpus"):
            parse_gpus(bad)


def test_free_port_can_be_bound():
    port = free_port("127.0.0.1")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_module_invocation_for_builds_without_a_working_vllm_script():
    command = vllm_command("vllm", "/venvs/vllm/bin/python")
    argv = vllm_argv(command, LaunchRequest(model_id="m", target="/srv/models/t", k=3,
                                            draft="/srv/models/d"), 8001)
    assert argv[:5] == ["/venvs/vllm/bin/python", "-m", "vllm.entrypoints.openai.api_server",
                        "--model", "/srv/models/t"]
    assert argv[5:9] == ["--served-model-name", "m", "--port", "8001"]
    assert vllm_command("/opt/vllm") == ["/opt/vllm", "serve"]


def test_a_cpu_host_has_slots_not_gpus():
    pool = GpuPool.cpu(2)
    assert (pool.device, pool.unit, pool.max_tensor_parallel) == ("cpu", "CPU slot", 1)
    assert pool.allocate(1) == [0] and pool.allocate(1) == [1] and pool.allocate(1) is None
    assert GpuPool([0, 1, 2]).max_tensor_parallel == 3
    with pytest.raises(ValueError, match="--cpu"):
        GpuPool.cpu(0)
