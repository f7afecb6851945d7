"""The Telemetry page over HTTP: choosing the device, stream and fields, the time ranges, the API's downsampling
(bucket size and statistic), the polled chart fragment, and a bad custom range refused naming its field.

The seeded cloud holds 30 messages of ``hub-1``'s stream ``sensors``, one a minute over the last half hour, each
``{"temperature": 20..24}``.
"""

from __future__ import annotations

import datetime
import json
import re
from typing import Any

import httpx

from tests.console.conftest import STREAM, THING, ConsoleCloud, log_in


def _chart(html: str) -> dict[str, Any]:
    found = re.search(
        r'<figure class="chart" id="telemetry-chart"[^>]*>.*?<script type="application/json">(.*?)'
        r"</script>",
        html,
        re.S,
    )
    assert found is not None, "no chart"
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def _minute(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M")


async def test_the_page_picks_the_device_stream_and_field_and_polls_the_last_hour(
    console_cloud: ConsoleCloud, console_client: httpx.AsyncClient
) -> None:
    await log_in(console_client, console_cloud.read_only_token)
    page = await console_client.get("/console/telemetry")
    assert page.status_code == 200
    assert f'<option value="{THING}" selected>' in page.text
    assert f'<option value="{STREAM}" selected>' in page.text
    assert re.search(r'name="field" value="temperature" checked', page.text)
    assert "mean per 30 s" in page.text
    data = _chart(page.text)
    assert data["series"][0]["label"] == "temperature"
    assert len(data["x"]) == 30
    assert set(data["series"][0]["values"]) == {20.0, 21.0, 22.0, 23.0, 24.0}
    poll = re.search(r'hx-get="([^"]+)" hx-trigger="every 5s"', page.text)
    assert poll is not None
    fragment = await console_client.get(poll.group(1).replace("&amp;", "&"), headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert "<html" not in fragment.text
    assert _chart(fragment.text)["series"] == data["series"]


async def test_a_long_range_is_downsampled_by_the_api(
    console_cloud: ConsoleCloud, console_client: httpx.AsyncClient
) -> None:
    await log_in(console_client, console_cloud.read_only_token)
    page = await console_client.get(
        "/console/telemetry",
        params={"thing": THING, "stream": STREAM, "field": "temperature", "range": "24h", "stat": "count"},
    )
    assert page.status_code == 200
    assert "count per 900 s" in page.text
    data = _chart(page.text)
    # 30 messages a minute apart fall in at most 3 buckets of 15 minutes, which together count all of them.
    assert 2 <= len(data["x"]) <= 3
    assert sum(data["series"][0]["values"]) == 30


async def test_a_custom_range_is_not_polled_and_a_bad_one_names_its_field(
    console_cloud: ConsoleCloud, console_client: httpx.AsyncClient
) -> None:
    await log_in(console_client, console_cloud.read_only_token)
    now = datetime.datetime.now(datetime.UTC)
    custom = {
        "thing": THING,
        "stream": STREAM,
        "field": "temperature",
        "range": "custom",
        "stat": "max",
        "since": _minute(now - datetime.timedelta(hours=2)),
        "until": _minute(now + datetime.timedelta(minutes=2)),
    }
    page = await console_client.get("/console/telemetry", params=custom)
    assert page.status_code == 200
    assert 'hx-trigger="every 5s"' not in page.text
    assert "max per 120 s" in page.text
    assert max(_chart(page.text)["series"][0]["values"]) == 24.0

    backwards = {**custom, "until": _minute(now - datetime.timedelta(hours=3))}
    refused = await console_client.get("/console/telemetry", params=backwards)
    assert refused.status_code == 422
    assert "Field &#39;until&#39; must be after &#39;since&#39;" in refused.text
    garbled = await console_client.get("/console/telemetry", params={**custom, "since": "yesterday"})
    assert garbled.status_code == 422
    assert "Field &#39;since&#39; is not a date and time" in garbled.text
    missing = await console_client.get("/console/telemetry/chart", params={**custom, "since": ""})
    assert missing.status_code == 422
    assert "Field &#39;since&#39; is required" in missing.text
    assert "<html" not in missing.text
