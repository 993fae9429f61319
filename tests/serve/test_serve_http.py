"""The app behind a real uvicorn socket on 127.0.0.1: what TestClient cannot show (streamed bodies)."""

from __future__ import annotations

from serve_support import small_run
from serving import serving


def test_chunked_upload_over_the_limit_is_cut_off_early(tmp_path_factory):
    import httpx

    from postloc.inference.predictor import load
    from postloc.serve.app import ServeSettings, create_app
    from postloc.serve.limits import Limits

    app = create_app(load(small_run(tmp_path_factory)), ServeSettings(limits=Limits(max_body_bytes=4096)))
    pulled = []

    def chunks():
        for i in range(50_000):  # 50 MB if it were all sent
            pulled.append(i)
            yield b"x" * 1000

    with serving(app) as url:
        try:
            response = httpx.post(
                f"{url}/v1/predict", content=chunks(), headers={"content-type": "application/json"}, timeout=20
            )
            assert response.status_code == 413 and response.json()["error"]["code"] == 413
        except httpx.HTTPError:
            pass  # the server may also close the connection while the client is still sending
        assert len(pulled) < 50_000, len(pulled)
        ok = httpx.post(f"{url}/v1/predict", json={"text": "hello"}, timeout=20)
        assert ok.status_code == 200
