"""Past its capacity the API answers 503 with Retry-After at once after a short wait in the
event loop, never a long hang on the connection pool (api.limits.Admission)."""

from __future__ import annotations

import anyio
import httpx
from starlette.responses import PlainTextResponse

from pawdex.api.limits import Admission
from pawdex.core.settings import Settings


def _app(release: anyio.Event):
    async def slow(scope, receive, send):
        await release.wait()
        await PlainTextResponse("done")(scope, receive, send)

    return slow


def test_requests_past_capacity_wait_then_get_503_with_retry_after(tmp_path):
    settings = Settings(data_dir=tmp_path, api_threads=2, api_queue_timeout=0.3)

    async def scenario() -> list[int]:
        release = anyio.Event()
        app = Admission(_app(release), settings=lambda: settings)
        statuses: list[int] = []
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:

            async def get(path: str) -> None:
                response = await client.get(path)
                statuses.append(response.status_code)
                if response.status_code == 503:
                    assert int(response.headers["Retry-After"]) >= 1
                    assert "busy" in response.json()["detail"]

            async with anyio.create_task_group() as tasks:
                for _ in range(3):  # two admitted (held), the third waits, then is shed
                    tasks.start_soon(get, "/v1/photos")
                tasks.start_soon(get, "/v1/images")  # uploads are not counted: held too
                await anyio.sleep(0.6)
                assert statuses == [503]
                release.set()
        return statuses

    assert sorted(anyio.run(scenario)) == [200, 200, 200, 503]
