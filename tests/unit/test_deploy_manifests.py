"""The deployment files agree with the bot: webhook port, probes, and stop grace periods
longer than the bot's own shutdown."""

from __future__ import annotations

from pathlib import Path

import yaml

from bot.app import webhook_shutdown_bound
from bot.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
BOT_SHUTDOWN = webhook_shutdown_bound(Settings(_env_file=None))  # at the default settings


def _port() -> int:
    return Settings.model_fields["webhook_listen"].default.rpartition(":")[2]


def test_kubernetes_deployment_waits_longer_than_the_bot_shuts_down():
    [deployment] = yaml.safe_load_all((DEPLOY / "k8s" / "deployment.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    [bot] = pod["containers"]
    assert deployment["spec"]["replicas"] > 1
    pre_stop = bot["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > pre_stop + BOT_SHUTDOWN
    assert bot["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "webhook"}
    assert bot["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "webhook"}
    [port] = bot["ports"]
    assert str(port["containerPort"]) == _port()
    listen = {e["name"]: e["value"] for e in bot["env"]}["WEBHOOK_LISTEN"]
    assert listen.endswith(f":{port['containerPort']}")
    refs = {next(iter(r.values()))["name"] for r in bot["envFrom"]}
    assert refs == {"chatmux-config", "chatmux-secrets"}


def test_kustomization_lists_what_exists_and_the_service_reaches_the_pods():
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (DEPLOY / "k8s" / resource).exists()
    [service] = yaml.safe_load_all((DEPLOY / "k8s" / "service.yaml").read_text())
    [deployment] = yaml.safe_load_all((DEPLOY / "k8s" / "deployment.yaml").read_text())
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "webhook"


def test_compose_bot_waits_longer_than_the_bot_shuts_down():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    bot = compose["services"]["bot"]
    assert float(bot["stop_grace_period"].removesuffix("s")) > BOT_SHUTDOWN
    assert bot["environment"]["WEBHOOK_LISTEN"] == f"0.0.0.0:{_port()}"
    assert "webhook" in compose["services"]["proxy"]["profiles"]
