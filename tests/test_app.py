import time

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError


def test_explorer_endpoint_of_the_running_app(app_url):
    client = Client(app_url, verbose=False)
    result = client.predict("linear", 1000, ["min_snr", "constant"], "eps", "t", 5.0, False, api_name="/explorer")
    names = [trace["name"] for trace in result["traces"]]
    assert names == ["Min-SNR-γ (gamma=5)", "Constant (x0)"]
    min_snr = result["traces"][0]["y"]
    assert min_snr[0] < 1e-3 and min_snr[-1] == 1.0
    # Zero terminal SNR: the unbounded constant-x0 ε weight loses its last point, with a notice.
    result = client.predict("linear", 1000, ["constant"], "eps", "t", 5.0, True, api_name="/explorer")
    assert len(result["traces"][0]["x"]) == 999 and "unbounded" in result["notices"][0]


@pytest.mark.parametrize(("args", "message"), [
    (("cosine", 10_000_000, ["min_snr"], "eps", "t", 5.0, False), "num_timesteps"),
    (("cosine", 1000, ["fancy"], "eps", "t", 5.0, False), "fancy"),
    (("cosine", 1000, ["min_snr"], "eps", "t", 0.0, False), "gamma"),
    (("cosine", 1000, ["min_snr"], "score", "t", 5.0, False), "target"),
])
def test_explorer_endpoint_refuses_what_its_controls_do_not_allow(app_url, args, message):
    """T = 10 million once grew the server by 4 GB: now every value is checked first, and the client is told why."""
    client = Client(app_url, verbose=False)
    started = time.time()
    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name="/explorer")
    assert time.time() - started < 10


def test_denoise_marks_each_step_at_the_weight_the_run_trained_it_with(tmp_path):
    from app.denoise_ui import denoise, weight_marker
    from minsnr_core.runs import load_run
    from minsnr_core.training import TrainConfig, train

    config = TrainConfig(dataset="moons", steps=3, toy_size=64, batch_size=16, preview_every=0, device="cpu",
                         weighting="min_snr", weighting_params={"gamma": 2.0}, out_dir=str(tmp_path))
    for _ in train(config):
        pass
    result = denoise(str(tmp_path), "ddim", 5, 0, 1.0)
    weights = load_run(tmp_path, "cpu").diffusion.weights
    assert result.step_weights == [float(weights[t]) for t in result.trajectory.timesteps]
    assert (result.weighting, result.target, result.kind) == ("Min-SNR-γ", "eps", "points")
    marker = weight_marker(result, 2).data[1]
    assert marker.y[0] == result.step_weights[2] and f"t = {result.trajectory.timesteps[2]}" in marker.name
