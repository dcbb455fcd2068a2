from gradio_client import Client


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
