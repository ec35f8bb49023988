"""The simulator's `POST /v1/embeddings`, over real HTTP: OpenAI's shape for the stock client and plain
HTTP, refusals, faults, stats and recorded inputs. What the vectors mean: test_sim_embedding_vectors.py."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import numpy as np
import openai
import pytest
import pytest_asyncio

from tests.conftest import Simulator

SMALL = "text-embedding-3-small"


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest_asyncio.fixture
async def client(sim: Simulator) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=sim.base_url, api_key="x", max_retries=0) as oai:
        yield oai


async def post(http: aiohttp.ClientSession, sim: Simulator, body: Any) -> tuple[int, Any]:
    async with http.post(f"{sim.base_url}/embeddings", json=body) as resp:
        return resp.status, await resp.json()


def embed_body(inputs: str | list[str], **extra: Any) -> dict[str, Any]:
    return {"model": SMALL, "input": inputs, **extra}


async def test_response_has_openai_shape_in_input_order(sim: Simulator, http: aiohttp.ClientSession) -> None:
    """A list input gets one float vector per input, indexed in input order, with the model and usage."""
    status, body = await post(http, sim, embed_body(["one latte", "two lattes", "three"]))
    assert status == 200
    assert body["object"] == "list"
    assert body["model"] == SMALL
    assert [item["index"] for item in body["data"]] == [0, 1, 2]
    assert all(item["object"] == "embedding" and len(item["embedding"]) == 1536 for item in body["data"])
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] >= 3
    assert body["data"][0]["embedding"] != body["data"][2]["embedding"]


async def test_a_string_input_is_one_vector(sim: Simulator, http: aiohttp.ClientSession) -> None:
    """A bare string is embedded as a list of one, as the same string in a list."""
    _, single = await post(http, sim, embed_body("americano"))
    _, listed = await post(http, sim, embed_body(["americano"]))
    assert len(single["data"]) == 1
    assert single["data"][0]["embedding"] == listed["data"][0]["embedding"]


async def test_stock_client_base64_default_decodes_to_the_float_vectors(client: openai.AsyncOpenAI) -> None:
    """The openai client's default (it asks for base64) and encoding_format="float" give the same vectors."""
    texts = ["How much is an iced americano?", "아이스 아메리카노는 얼마예요?"]
    default = await client.embeddings.create(model=SMALL, input=texts)
    floats = await client.embeddings.create(model=SMALL, input=texts, encoding_format="float")
    assert [len(item.embedding) for item in default.data] == [1536, 1536]
    for decoded, plain in zip(default.data, floats.data, strict=True):
        assert np.allclose(decoded.embedding, plain.embedding, atol=0, rtol=1e-6)


async def test_base64_is_little_endian_float32(sim: Simulator, http: aiohttp.ClientSession) -> None:
    """encoding_format base64 carries the float vector's little-endian float32 bytes."""
    _, encoded = await post(http, sim, embed_body("latte", encoding_format="base64"))
    _, plain = await post(http, sim, embed_body("latte", encoding_format="float"))
    vector = np.frombuffer(base64.b64decode(encoded["data"][0]["embedding"]), dtype="<f4")
    assert np.array_equal(vector, np.asarray(plain["data"][0]["embedding"], dtype="<f4"))


@pytest.mark.parametrize(
    ("model", "size"),
    [
        (SMALL, 1536),
        ("text-embedding-3-large", 3072),
        ("text-embedding-ada-002", 1536),
        ("nomic-embed", 1536),
    ],
)
async def test_default_dimensions_per_model(client: openai.AsyncOpenAI, model: str, size: int) -> None:
    """Each model's vectors have its default size; a model the simulator does not know gets 1536."""
    result = await client.embeddings.create(model=model, input="latte")
    assert len(result.data[0].embedding) == size


async def test_dimensions_sets_the_size_of_unit_vectors(client: openai.AsyncOpenAI) -> None:
    """`dimensions` sets each vector's length, and the vectors stay L2-normalised."""
    result = await client.embeddings.create(
        model="text-embedding-3-large", input=["latte", "!"], dimensions=256
    )
    for item in result.data:
        assert len(item.embedding) == 256
        assert np.linalg.norm(item.embedding) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": SMALL, "input": []}, "input"),
        ({"model": SMALL, "input": ""}, "input"),
        ({"model": SMALL, "input": ["latte", ""]}, "input"),
        ({"model": SMALL, "input": [101, 2023]}, "input"),
        ({"model": SMALL, "input": [[101, 2023]]}, "input"),
        ({"model": SMALL, "input": ["latte"] * 2049}, "input"),
        ({"model": SMALL}, "input"),
        ({"model": SMALL, "input": "latte", "dimensions": 0}, "dimensions"),
        ({"model": SMALL, "input": "latte", "dimensions": -3}, "dimensions"),
        ({"model": SMALL, "input": "latte", "dimensions": "8"}, "dimensions"),
        ({"model": SMALL, "input": "latte", "dimensions": 1537}, "dimensions"),
        ({"model": "text-embedding-ada-002", "input": "latte", "dimensions": 8}, "dimensions"),
        ({"model": SMALL, "input": "latte", "encoding_format": "int8"}, "encoding_format"),
        ({"input": "latte"}, "model"),
    ],
)
async def test_bad_request_is_400_naming_the_param(
    sim: Simulator, http: aiohttp.ClientSession, body: dict[str, Any], param: str
) -> None:
    """Empty, token-array, too many inputs and bad dimensions are refused in OpenAI's error shape."""
    status, answer = await post(http, sim, body)
    assert status == 400
    assert answer["error"]["type"] == "invalid_request_error"
    assert answer["error"]["param"] == param
    assert answer["error"]["message"]


async def test_a_body_that_is_not_a_json_object_is_400(sim: Simulator, http: aiohttp.ClientSession) -> None:
    """A JSON list or broken JSON as the body is a 400, not a server error."""
    assert (await post(http, sim, ["latte"]))[0] == 400
    async with http.post(f"{sim.base_url}/embeddings", data=b"{nope") as resp:
        assert resp.status == 400


async def test_unused_keys_are_ignored(sim: Simulator, http: aiohttp.ClientSession) -> None:
    """`user` and keys the simulator does not know do not change the vectors."""
    _, plain = await post(http, sim, embed_body("latte"))
    _, extra = await post(http, sim, embed_body("latte", user="u-1", novel_option=True))
    assert extra["data"] == plain["data"]


async def test_strict_models_refuses_unknown_models_and_lists_embedding_ones(
    sim: Simulator, client: openai.AsyncOpenAI
) -> None:
    """Under strict_models an unknown model is a 404 model_not_found; OpenAI's embedding models serve."""
    sim.configure(strict_models=True)
    with pytest.raises(openai.NotFoundError) as refused:
        await client.embeddings.create(model="nomic-embed", input="latte")
    assert refused.value.code == "model_not_found"
    for model in ("text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002"):
        await client.embeddings.create(model=model, input="latte")
    listed = {model.id async for model in client.models.list()}
    assert {"text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002"} <= listed


async def test_required_api_key_gives_401(sim: Simulator, client: openai.AsyncOpenAI) -> None:
    """With require_api_key set, a request with another key is a 401 as for chat."""
    sim.configure(require_api_key="the-key")
    with pytest.raises(openai.AuthenticationError):
        await client.embeddings.create(model=SMALL, input="latte")


async def test_without_the_endpoint_it_is_an_openai_style_404(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """embeddings false: the endpoint answers 404 with an OpenAI error body, as a server lacking it."""
    sim.configure(embeddings=False)
    status, body = await post(http, sim, embed_body("latte"))
    assert status == 404
    assert body["error"]["type"] == "invalid_request_error"
    assert "/v1/embeddings" in body["error"]["message"]
    assert sim.stats()["embedding_inputs"] == 0


async def test_bad_embeddings_one_short_then_one_wrong_size_then_good(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """bad_embeddings 2: a response missing a vector, then one with a vector of the wrong size, then good."""
    sim.configure(bad_embeddings=2)
    texts = ["latte", "americano", "wifi"]
    _, short = await post(http, sim, embed_body(texts))
    assert len(short["data"]) == 2
    _, wrong = await post(http, sim, embed_body(texts))
    assert len(wrong["data"]) == 3
    assert sorted(len(item["embedding"]) for item in wrong["data"]) != [1536, 1536, 1536]
    _, good = await post(http, sim, embed_body(texts))
    assert [len(item["embedding"]) for item in good["data"]] == [1536, 1536, 1536]
    assert sim.settings()["bad_embeddings"] == 0


@pytest.mark.parametrize(
    ("rate", "status"),
    [("rate_429", 429), ("rate_500", 500), ("rate_503", 503), ("rate_cut", 500), ("rate_badline", 500)],
)
async def test_random_faults_apply_to_embeddings(
    sim: Simulator, http: aiohttp.ClientSession, rate: str, status: int
) -> None:
    """Chat's random fault rates give embeddings requests the same statuses (stream faults: a 500)."""
    sim.configure(**{rate: 1.0})
    async with http.post(f"{sim.base_url}/embeddings", json=embed_body("latte")) as resp:
        assert resp.status == status
        body = await resp.json()
        if status == 429:
            assert float(resp.headers["Retry-After"]) == pytest.approx(0.2)
    assert body["error"]["message"]
    stats = sim.stats()
    assert stats["embedding_inputs"] == 0
    assert stats["embedding_responses_by_status"] == {str(status): 1}


async def test_rpm_limit_counts_embeddings_requests(sim: Simulator, http: aiohttp.ClientSession) -> None:
    """Past rpm_limit an embeddings request gets a 429 with Retry-After, as a chat request does."""
    sim.configure(rpm_limit=1)
    assert (await post(http, sim, embed_body("latte")))[0] == 200
    async with http.post(f"{sim.base_url}/embeddings", json=embed_body("latte")) as resp:
        assert resp.status == 429
        assert "Retry-After" in resp.headers


async def test_stats_count_embeddings_apart_from_chat(sim: Simulator, http: aiohttp.ClientSession) -> None:
    """embedding_requests and embedding_inputs count embeddings calls; requests_total (chat) does not."""
    await post(http, sim, embed_body(["a latte", "an americano"]))
    await post(http, sim, embed_body("wifi"))
    await post(http, sim, embed_body([]))
    stats = sim.stats()
    assert stats["embedding_requests"] == 3
    assert stats["embedding_inputs"] == 3
    assert stats["requests_total"] == 0
    sim.reset()
    assert sim.stats()["embedding_requests"] == sim.stats()["embedding_inputs"] == 0


async def test_recorded_inputs_and_reset(sim: Simulator, http: aiohttp.ClientSession) -> None:
    """With record_requests, /_sim/embeddings lists each request's model, inputs and dimensions."""
    sim.configure(record_requests=True)
    await post(http, sim, embed_body(["a latte", "아메리카노"], dimensions=64))
    await post(http, sim, {"model": "text-embedding-3-large", "input": "wifi"})
    assert sim.embeddings() == [
        {"model": SMALL, "inputs": ["a latte", "아메리카노"], "dimensions": 64},
        {"model": "text-embedding-3-large", "inputs": ["wifi"], "dimensions": None},
    ]
    sim.reset()
    assert sim.embeddings() == []


async def test_nothing_is_recorded_without_record_requests(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """record_requests false (the default): the inputs are not kept."""
    await post(http, sim, embed_body("a latte"))
    assert sim.embeddings() == []
