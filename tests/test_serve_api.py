"""The web page's JSON API (nst/serve/app.py) through FastAPI's TestClient: every endpoint, every
error status, the bad inputs the project already refuses, and a good request after each bad one."""

from __future__ import annotations

import io
import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("fastapi", reason="nst[serve] is not installed")
pytest.importorskip("multipart", reason="nst[serve] is not installed (python-multipart)")
from fastapi.testclient import TestClient  # noqa: E402

from nst.models.modelfile import save_model  # noqa: E402
from nst.networks.srnet import SRNet  # noqa: E402
from nst.networks.transformer import TransformerNet  # noqa: E402
from nst.serve.app import STATIC, Settings, create_app  # noqa: E402
from nst.serve.jobs import Worker  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import make_corpus  # noqa: E402

CARD = {"style": ["starry_night.jpg"], "style_size": 32,
        "loss": {"content_layers": {"relu2_2": 1.0}, "style_layers": {"relu1_2": 1.0, "relu2_2": 1.0},
                 "content_weight": 1.0, "style_weight": 1.0, "tv_weight": 1.0, "normalize": True},
        "vgg": {"arch": "vgg16", "weights": "random"}}
BASE = "http://127.0.0.1:8000"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    save_model(folder / "tiny.safetensors", TransformerNet(8, 1).eval(), CARD)
    strength = TransformerNet(8, 1, strength_input=True)
    with torch.no_grad():  # away from the initial identity conditioning, so strength changes the output
        for p in strength.parameters():
            p.add_(0.2 * torch.randn(p.shape))
    save_model(folder / "tiny_strength.safetensors", strength.eval(), CARD)
    save_model(folder / "tiny_sr.safetensors", SRNet(2, 8, 1).eval(), {})
    return folder


def make_client(models: Path, **settings) -> TestClient:
    s = Settings(models=str(models), vgg_weights="random", backend="torch", **settings)
    return TestClient(create_app(s), base_url=BASE)


@pytest.fixture(scope="module")
def client(models):
    with make_client(models) as c:
        yield c


def png(w: int = 48, h: int = 40, mode: str = "RGB") -> bytes:
    """A noisy photo (a flat one would come out flat from any network: instance norm)."""
    pixels = np.random.default_rng(w * h).integers(0, 256, (h, w, len(mode)), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, mode).save(buf, "PNG")
    return buf.getvalue()


def post(client, path: str, data: bytes, name: str = "photo.png", **form):
    return client.post(path, files={"image": (name, data, "image/png")}, data=form)


def picture(response) -> Image.Image:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return Image.open(io.BytesIO(response.content))


def good(client) -> None:
    assert picture(post(client, "/api/stylize", png(), model="tiny")).size == (48, 40)


def error(response, status: int, *phrases: str) -> str:
    assert response.status_code == status, response.text
    message = response.json()["error"]
    assert "\n" not in message and all(p in message for p in phrases), message
    return message


def test_models_lists_the_shipped_and_the_folder_models_with_their_kinds(client):
    kinds = {m["name"]: m["kind"] for m in client.get("/api/models").json()}
    assert kinds["starry_night"] == "style" and kinds["four_styles"] == "multistyle"
    assert (kinds["tiny"], kinds["tiny_strength"], kinds["tiny_sr"]) == ("style", "strength", "upscale")


def test_stylize_returns_a_png_the_size_of_the_photo(client):
    assert picture(post(client, "/api/stylize", png(53, 37), model="starry_night")).size == (53, 37)


def test_max_side_smaller_than_the_photo_scales_it_down(client):
    assert picture(post(client, "/api/stylize", png(80, 40), model="tiny", max_side="40")).size == (40, 20)


def test_the_alpha_channel_is_kept(client):
    assert picture(post(client, "/api/stylize", png(mode="RGBA"), model="tiny")).mode == "RGBA"


def test_a_multi_style_model_takes_a_style_name_or_a_mix(client):
    by_name = post(client, "/api/stylize", png(), model="four_styles", style="udnie").content
    by_index = post(client, "/api/stylize", png(), model="four_styles", style="3").content
    mixed = post(client, "/api/stylize", png(), model="four_styles", style_mix="0,0,0.5,0.5")
    assert by_name == by_index and picture(mixed).size == (48, 40) and mixed.content != by_name


def test_strength_is_the_strength_networks_input(client):
    photo = png()
    full = post(client, "/api/stylize", photo, model="tiny_strength", strength="1").content
    none = post(client, "/api/stylize", photo, model="tiny_strength", strength="0").content
    assert full != none


def test_upscale_returns_factor_times_the_photo(client):
    assert picture(post(client, "/api/upscale", png(30, 20), model="tiny_sr")).size == (60, 40)


def test_a_model_of_the_other_kind_is_refused(client):
    error(post(client, "/api/upscale", png(), model="tiny"), 422, "style model")
    error(post(client, "/api/stylize", png(), model="tiny_sr"), 422, "super-resolution")
    good(client)


@pytest.mark.parametrize("name", ["nope", "../tiny", "/etc/passwd", "tiny.safetensors"])
def test_only_listed_model_names_are_taken(client, name):
    error(post(client, "/api/stylize", png(), model=name), 404, "unknown")
    good(client)


def test_a_bad_option_value_is_422(client):
    error(post(client, "/api/stylize", png(), model="four_styles", style="monet"), 422, "monet")
    error(post(client, "/api/stylize", png(), model="tiny", strength="2"), 422, "strength")
    error(client.post("/api/stylize", data={"model": "tiny"}), 422, "image")
    good(client)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.mark.parametrize("name,phrase", [("truncated_jpeg", "truncated"), ("truncated_png", "truncated"),
                                         ("text_as_jpeg", "not an image"), ("bomb", "too large"),
                                         ("empty", "empty")])
def test_a_file_that_is_not_a_readable_image_is_422_naming_it(client, corpus, name, phrase):
    case = corpus[name]
    message = error(post(client, "/api/stylize", case.path.read_bytes(), name=case.path.name, model="tiny"),
                    422, phrase)
    assert case.path.name in message and "nst-upload" not in message  # the upload's name, not a temp path
    good(client)


@pytest.mark.parametrize("name", ["cmyk_jpeg", "png16", "palette", "exif_rotated", "7x5"])
def test_odd_but_valid_images_are_stylized_upright(client, corpus, name):
    case = corpus[name]
    expected = Image.open(case.path)
    from PIL import ImageOps

    size = ImageOps.exif_transpose(expected).size
    assert picture(post(client, "/api/stylize", case.path.read_bytes(), name=case.path.name,
                        model="tiny")).size == size


def test_an_upload_over_the_byte_limit_is_413(models):
    with make_client(models, max_upload_mb=0.01) as small:
        error(post(small, "/api/stylize", bytes(20_000), model="tiny"), 413, "limit")
        good(small)


def test_a_chunked_upload_is_counted_as_it_arrives_and_stopped_at_the_limit(models):
    def body():  # no Content-Length: the limit can only be kept by counting
        yield b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
        for _ in range(30):
            yield bytes(1000)
        yield b"\r\n--x--\r\n"

    with make_client(models, max_upload_mb=0.01) as small:
        response = small.post("/api/stylize", content=body(),
                              headers={"content-type": "multipart/form-data; boundary=x"})
        assert response.request.headers.get("transfer-encoding") == "chunked"
        error(response, 413, "limit")
        good(small)


def test_an_image_over_max_pixels_is_422(models):
    with make_client(models, max_pixels=1000) as small:
        error(post(small, "/api/stylize", png(48, 40), model="tiny"), 422, "max_pixels")
        assert picture(post(small, "/api/stylize", png(30, 30), model="tiny")).size == (30, 30)


def test_a_full_queue_is_503_and_frees_up(client):
    worker = client.app.state.worker
    worker.pending = worker.limit  # as if that many requests were waiting
    try:
        error(post(client, "/api/stylize", png(), model="tiny"), 503, "busy")
    finally:
        worker.pending = 0
    good(client)


def test_the_worker_counts_what_waits_and_runs():
    import asyncio
    import threading

    from nst.serve.errors import ApiError

    worker, gate = Worker(workers=1, queue=2), threading.Event()

    async def scenario():
        first = asyncio.ensure_future(worker.run(gate.wait))
        second = asyncio.ensure_future(worker.run(gate.wait))
        await asyncio.sleep(0.05)
        with pytest.raises(ApiError) as refused:
            await worker.run(gate.wait)
        gate.set()
        await asyncio.gather(first, second)
        return refused.value.status

    assert asyncio.run(scenario()) == 503 and worker.pending == 0


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.2:8000"])
def test_a_foreign_host_header_is_refused(client, host):
    error(client.get("/api/models", headers={"host": host}), 400, "Host header")


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost:8000", "localhost", "[::1]:8000"])
def test_the_servers_own_names_are_taken(client, host):
    assert client.get("/api/models", headers={"host": host}).status_code == 200


@pytest.mark.parametrize("headers", [{"origin": "https://evil.example"}, {"origin": "null"},
                                     {"sec-fetch-site": "cross-site"}])
def test_a_request_from_another_site_is_refused(client, headers):
    error(post_with(client, headers), 403, "another site")
    good(client)


def test_the_pages_own_origin_is_taken(client):
    response = post_with(client, {"origin": BASE, "sec-fetch-site": "same-origin"})
    assert picture(response).size == (48, 40)


def post_with(client, headers: dict):
    return client.post("/api/stylize", files={"image": ("photo.png", png(), "image/png")},
                       data={"model": "tiny"}, headers=headers)


def test_a_host_header_with_junk_after_an_ipv6_address_is_refused(client):
    error(client.get("/api/models", headers={"host": "[::1]evil.example"}), 400, "Host header")


def test_a_gatys_upload_is_not_decoded_when_the_worker_is_full(client, monkeypatch):
    import nst.serve.app as app_module

    calls = []
    monkeypatch.setattr(app_module, "decode_upload", lambda *args: calls.append(args))
    worker = client.app.state.worker
    worker.pending = worker.limit
    try:
        error(post(client, "/api/gatys", png(), model="tiny", iterations="1", max_side="32"), 503, "busy")
    finally:
        worker.pending = 0
    assert calls == []


def test_a_full_gatys_queue_is_503(client):
    worker = client.app.state.jobs.worker
    worker.pending = worker.limit
    try:
        error(post(client, "/api/gatys", png(), model="tiny", iterations="1", max_side="32"), 503, "busy")
    finally:
        worker.pending = 0
    good(client)


def test_a_failure_of_the_server_is_a_json_500(client, monkeypatch):
    catalog = client.app.state.catalog

    def broken(name):
        raise RuntimeError("out of memory\nsecond line")

    monkeypatch.setattr(catalog, "model", broken)
    response = TestClient(client.app, base_url=BASE, raise_server_exceptions=False).post(
        "/api/stylize", files={"image": ("photo.png", png(), "image/png")}, data={"model": "tiny"})
    error(response, 500, "RuntimeError", "out of memory")


def wait(client, job: str, states=("done", "cancelled", "failed"), timeout: float = 120) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        status = client.get(f"/api/gatys/{job}").json()
        if status["state"] in states:
            return status
        time.sleep(0.05)
    raise AssertionError(f"Gatys job {job} still {status}")


def test_a_gatys_job_runs_to_its_iterations_and_shows_its_image(client):
    started = post(client, "/api/gatys", png(40, 32), model="tiny", iterations="3", max_side="32")
    assert started.status_code == 202, started.text
    status = wait(client, started.json()["id"])
    assert (status["state"], status["step"], status["iterations"]) == ("done", 3, 3), status
    assert status["loss"] > 0
    assert picture(client.get(f"/api/gatys/{status['id']}/image")).size == (32, 26)


def test_a_cancelled_gatys_job_stops_early(client):
    job = post(client, "/api/gatys", png(40, 32), model="tiny", iterations="500", max_side="32").json()["id"]
    wait(client, job, states=("running",))
    assert client.delete(f"/api/gatys/{job}").status_code == 200
    status = wait(client, job)
    assert status["state"] == "cancelled" and status["step"] < 500


def test_gatys_refuses_a_path_as_init_and_more_than_the_servers_limits(client):
    error(post(client, "/api/gatys", png(), model="tiny", init="/etc/passwd"), 422, "init")
    error(post(client, "/api/gatys", png(), model="tiny", iterations="100000"), 422, "at most")
    error(post(client, "/api/gatys", png(), model="tiny_sr"), 422, "super-resolution")
    error(client.get("/api/gatys/g999"), 404, "unknown")
    good(client)


def test_the_page_and_its_files_name_no_other_site(client):
    page = client.get("/")
    assert page.status_code == 200 and "<script src=\"/static/app.js\">" in page.text
    texts = [page.text] + [client.get(f"/static/{p.name}").text for p in STATIC.iterdir()]
    assert len(texts) == 4
    for text in texts:
        found = re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I)
        assert found == []
