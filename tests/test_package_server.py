"""The package's own server.py (what the Dockerfile runs) holds `ml-expert serve`'s contract.

Run in this process on 127.0.0.1 with real sockets, so the model's runs can be counted."""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from ml_expert import run

ROW = {"sepal length (cm)": 5.1, "sepal width (cm)": 3.5, "petal length (cm)": 1.4, "petal width (cm)": 0.2}


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = tmp_path_factory.mktemp("pkgserver") / "ws"
    result = run("iris", seed=4, budget=30, workspace=ws, memory="embedded", train_dnn=False)
    assert result.status == "finished", result.reason
    return Path(result.run_dir) / "deployment"


@pytest.fixture(scope="module")
def served(package: Path):
    from ml_expert.runtime import server as module

    module.HEADER_TIMEOUT_S, module.BODY_TIMEOUT_S = 1.5, 1.5
    model = module.ModelInference(package)
    calls = {"n": 0}
    real_run = model.session.run

    def counting_run(*args, **kwargs):
        calls["n"] += 1
        return real_run(*args, **kwargs)

    model.session = type("Counted", (), {"run": staticmethod(counting_run)})()
    httpd = module.Server(("127.0.0.1", 0), module.make_handler(model, "v7", None))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield {"base": base, "port": httpd.server_address[1], "calls": calls, "httpd": httpd}
    finally:
        httpd.shutdown()
        httpd.server_close()


def raw(port: int, request: bytes, timeout: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks) and b"Content-Length" in b"".join(chunks):
                    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
                    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                    if len(body) >= length:
                        break
        except TimeoutError:
            pass
        return b"".join(chunks)


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0


def test_predict_runs_the_model_once_and_labels_the_version(served: dict) -> None:
    before = served["calls"]["n"]
    reply = httpx.post(f"{served['base']}/predict", json={"rows": [ROW, ROW]})
    assert reply.status_code == 200
    body = reply.json()
    assert body["predictions"] == [0, 0] and len(body["probabilities"][0]) == 3 and body["version"] == "v7"
    assert reply.headers["x-model-version"] == "v7"
    assert served["calls"]["n"] - before == 1  # labels and probabilities from one run
    assert httpx.get(f"{served['base']}/health").json()["versions"] == ["v7"]


REST = b', "sepal width (cm)": 3.5, "petal length (cm)": 1.4, "petal width (cm)": 0.2}'


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"rows": []}', "rows"),
        (json.dumps({"rows": [ROW] * 1001}).encode(), "rows"),
        (b'{"sepal length (cm)": NaN' + REST, None),
        (b'{"sepal length (cm)": Infinity' + REST, None),
        (b"[" * 10000 + b"]" * 10000, None),
        (b'{"sepal length (cm)": ' + b"9" * 400 + REST, "sepal length (cm)"),
        (b'{"sepal length (cm)": 1e39' + REST, "sepal length (cm)"),
        (b'{"sepal length (cm)": "\\ud800"' + REST, "sepal length (cm)"),
        (b"{not json", None),
        (b"5", None),
    ],
)
def test_bad_bodies_are_422_never_a_dropped_connection(served: dict, body: bytes, field: str | None) -> None:
    reply = httpx.post(
        f"{served['base']}/predict", content=body, headers={"content-type": "application/json"}
    )
    assert reply.status_code == 422, reply.text[:300]
    detail = reply.json()["detail"]
    if field:
        assert field in detail[0]["loc"], detail
    json.loads(reply.text, parse_constant=lambda name: pytest.fail(f"{name} literal in the answer"))


@pytest.mark.parametrize(
    ("length", "expected"),
    [(b"abc", 400), (b"-1", 400), (b"99999999999999999999", 400), (b"2000000", 413), (None, 411)],
)
def test_content_length_edge_cases_get_an_answer(served: dict, length: bytes | None, expected: int) -> None:
    header = b"" if length is None else b"Content-Length: " + length + b"\r\n"
    started = time.monotonic()
    answer = raw(served["port"], b"POST /predict HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n{}")
    assert status_of(answer) == expected, answer[:200]
    assert time.monotonic() - started < 5  # never a hung thread


def test_half_sent_requests_are_cut_off(served: dict) -> None:
    started = time.monotonic()
    for request in (
        b"POST /predict HTTP/1.1\r\nHost: x\r\n",  # headers never finish
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",  # body never finishes
    ):
        with socket.create_connection(("127.0.0.1", served["port"]), timeout=10) as sock:
            sock.sendall(request)
            while sock.recv(4096):
                pass
    assert time.monotonic() - started < 8  # two 1.5 s deadlines, not left open


def test_twenty_concurrent_clients_all_answered(served: dict) -> None:
    assert served["httpd"].request_queue_size >= 1024

    def client(_: int) -> list[int]:
        with httpx.Client(base_url=served["base"], timeout=30) as c:
            return [c.post("/predict", json=ROW).status_code for _ in range(20)]

    with ThreadPoolExecutor(20) as pool:
        codes = [code for codes in pool.map(client, range(20)) for code in codes]
    assert codes == [200] * 400
