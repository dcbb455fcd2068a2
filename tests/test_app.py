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
