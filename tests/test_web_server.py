"""A real `silent serve` on 127.0.0.1: restart on the same file keeps everything."""
import time

from tests.live import Server, call, free_port, wait_for


def test_restart_keeps_experiments_decisions_rewards_and_model(tmp_path):
    db = str(tmp_path / "shop.db")
    port = free_port()
    server = Server(db, port)
    try:
        spec = {"key": "home", "status": "running", "reward": {"wait_seconds": 0}, "learning": {"update_seconds": 0.1}}
        assert call(server.base, "POST", "/v1/experiments", spec)[0] == 201
        candidates = [{"id": f"sku-{i}", "features": {"price": i}} for i in range(4)]
        events = []
        for i in range(20):
            status, answer = call(server.base, "POST", "/v1/experiments/home/slate",
                                  {"unit": f"u{i}", "candidates": candidates})
            assert status == 200
            events.append(answer["event_id"])
        assert call(server.base, "POST", f"/v1/events/{events[0]}/rewards", {"type": "click", "id": "r"})[0] == 202
        model = wait_for(lambda: (call(server.base, "GET", "/v1/experiments/home")[1]["model"] or {})
                         .get("learned") == 20 and call(server.base, "GET", "/v1/experiments/home")[1]["model"])
    finally:
        output = server.stop()
    assert "stopped" in output

    server = Server(db, port)
    try:
        status, experiment = call(server.base, "GET", "/v1/experiments/home")
        assert experiment["status"] == "running"
        assert experiment["counts"] == {"decisions": 20, "rewards": 1}
        assert experiment["model"]["version"] >= model["version"] and experiment["model"]["learned"] == 20
        time.sleep(1.0)  # several learner passes: nothing may be learned again
        assert call(server.base, "GET", "/v1/experiments/home")[1]["model"]["learned"] == 20
        assert call(server.base, "POST", f"/v1/events/{events[0]}/rewards", {"type": "click", "id": "r"})[1]["duplicate"]
    finally:
        server.stop()
