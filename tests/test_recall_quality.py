"""Recall measured on a labelled set (issue 14): learnings × files, each file related to exactly
one learning. With at most three learnings per prompt, the right one must reach at least 80 % of
the files — offline (lexical and path globs) and with the model server's embeddings (the fake
server's, through the real OpenAI client), in memory and on Postgres (where the vector search
runs in pgvector). The figures are printed (`pytest -s` shows them)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from langgraph.store.memory import InMemoryStore

from review_agent.config import Settings
from review_agent.patches import parse_patch
from review_agent.storage.embeddings import Embedder, choose_embedder
from review_agent.storage.factory import open_storage
from review_agent.storage.lexical import glob_matches, path_globs
from review_agent.storage.memory import MAX_RECALLED, Learnings
from review_agent.storage.pgvectors import PgVectors
from tests.fakes.openai_server import FakeOpenAI

LEARNINGS = {
    "pickle": "serializer must never use pickle",
    "docstrings": "don't flag missing docstrings in tests/",
    "assert": "Never use assert for input validation in API request handlers",
    "migrations": "SQL migrations (*.sql) must be reversible: write the down migration too",
    "pathlib": "Prefer pathlib over os.path for file system paths",
    "print": "Use the logging module instead of print in library code",
    "react": "React components should be function components with hooks, not classes",
    "docker": "Pin base image versions in Dockerfiles; never use the latest tag",
    "sql": "Build SQL queries with bound parameters, never with string formatting",
    "http": "HTTP clients must set a timeout and retry with exponential backoff",
    "money": "Money amounts use Decimal, never float",
    "actions": "GitHub Actions workflows pin third-party actions to a commit SHA",
}

# path -> (the learning it is related to, its new content)
FILES: dict[str, tuple[str, str]] = {
    "src/app/serializer.py": (
        "pickle",
        "import pickle\n\n\nclass SessionSerializer:\n    def dumps(self, session):\n"
        "        return pickle.dumps(session)\n\n    def loads(self, blob):\n"
        "        return pickle.loads(blob)\n",
    ),
    "app/cache/store.py": (
        "pickle",
        "import pickle\n\nfrom redis import Redis\n\n\ndef remember(client: Redis, key, value):\n"
        "    client.set(key, pickle.dumps(value))\n",
    ),
    "tests/test_orders.py": (
        "docstrings",
        "from shop.orders import total\n\n\ndef test_total_of_empty_cart():\n    assert total([]) == 0\n\n\n"
        "def test_total_adds_items():\n    assert total([1, 2]) == 3\n",
    ),
    "backend/tests/api/test_users.py": (
        "docstrings",
        "def test_create_user(client):\n    response = client.post('/users', json={'email': 'a@b.c'})\n"
        "    assert response.status_code == 201\n",
    ),
    "api/handlers/users.py": (
        "assert",
        "def create_user(request):\n    assert request.json.get('email'), 'email required'\n"
        "    return User.create(email=request.json['email'])\n",
    ),
    "api/handlers/orders.py": (
        "assert",
        "def cancel_order(request, order_id):\n    assert request.user.is_authenticated\n"
        "    Order.get(order_id).cancel()\n",
    ),
    "db/migrations/0042_add_orders_index.sql": (
        "migrations",
        "CREATE INDEX orders_created_at_idx ON orders (created_at);\n",
    ),
    "db/migrations/0043_drop_legacy_table.sql": (
        "migrations",
        "DROP TABLE legacy_invoices;\n",
    ),
    "tools/build_assets.py": (
        "pathlib",
        "import os\n\n\ndef output_dir(root):\n    out = os.path.join(root, 'dist')\n"
        "    if not os.path.exists(out):\n        os.makedirs(out)\n    return out\n",
    ),
    "mylib/cache.py": (
        "print",
        "def get(key):\n    value = _CACHE.get(key)\n    if value is None:\n"
        "        print('cache miss', key)\n    return value\n",
    ),
    "web/src/components/UserCard.tsx": (
        "react",
        "import React from 'react';\n\nexport class UserCard extends React.Component<Props> {\n"
        "  render() {\n    return <div>{this.props.user.name}</div>;\n  }\n}\n",
    ),
    "Dockerfile": (
        "docker",
        "FROM python:latest\nCOPY . /app\nRUN pip install -r /app/requirements.txt\n",
    ),
    "app/db/queries.py": (
        "sql",
        "def find_order(cursor, order_id):\n"
        '    sql = f"SELECT * FROM orders WHERE id = {order_id}"\n'
        "    cursor.execute(sql)\n    return cursor.fetchone()\n",
    ),
    "clients/payment_client.py": (
        "http",
        "import requests\n\n\ndef charge(url, payload):\n    return requests.post(url, json=payload)\n",
    ),
    "billing/invoice.py": (
        "money",
        "def invoice_total(items):\n    amount = 0.0\n    for item in items:\n"
        "        amount += float(item['price']) * item['qty']\n    return amount\n",
    ),
    # added after the thresholds were set, as a check on them
    "app/api/handlers/payments.py": (
        "assert",
        "def refund(request):\n    assert request.json['amount'] > 0\n"
        "    return Refund.create(request.json)\n",
    ),
    "deploy/Dockerfile.worker": ("docker", 'FROM node:latest\nWORKDIR /srv\nCMD ["node", "worker.js"]\n'),
    "shop/pricing.py": (
        "money",
        "def unit_price(row):\n    price = float(row['price'])\n    return round(price * 1.2, 2)\n",
    ),
    "lib/report/writer.py": (
        "pathlib",
        "import os\n\n\ndef write(out_dir, name, text):\n"
        "    with open(os.path.join(out_dir, name), 'w') as f:\n        f.write(text)\n",
    ),
    "tests/unit/test_pricing.py": (
        "docstrings",
        "from shop.pricing import unit_price\n\n\n"
        "def test_vat():\n    assert unit_price({'price': '1'}) == 1.2\n",
    ),
    ".github/workflows/ci.yml": (
        "actions",
        "on: [push]\njobs:\n  test:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@v4\n      - uses: some-org/setup-tool@main\n",
    ),
}


def _hunks(content: str) -> str:
    lines = content.splitlines()
    return f"@@ -0,0 +1,{len(lines)} @@\n" + "".join(f"+{line}\n" for line in lines)


def measure(learnings: Learnings) -> tuple[float, float, dict[str, list[str]]]:
    """(recall, precision, per file the labels recalled): recall is the share of files whose
    learning is among those recalled; precision the share of recalled learnings that are the
    file's own."""
    ids = {}
    for label, text in LEARNINGS.items():
        ids[learnings.add(("repo", "acme/shop"), text).key] = label
    recall = learnings.recall([("repo", "acme/shop")])
    got: dict[str, list[str]] = {}
    for path, (_label, content) in FILES.items():
        recalled = recall(path, parse_patch(path, _hunks(content)).numbered)
        assert len(recalled.rules) <= MAX_RECALLED
        got[path] = [ids[i] for i in recalled.ids]
    hits = sum(FILES[p][0] in labels for p, labels in got.items())
    total_recalled = sum(len(labels) for labels in got.values())
    return hits / len(FILES), (hits / total_recalled if total_recalled else 0.0), got


def _print(title: str, recall: float, precision: float, got: dict[str, list[str]]) -> None:
    print(
        f"\n{title}: recall {recall:.2f} ({round(recall * len(FILES))}/{len(FILES)} files), "
        f"precision {precision:.2f}, at most {MAX_RECALLED} learnings per prompt"
    )
    for path, labels in got.items():
        mark = "ok  " if FILES[path][0] in labels else "MISS"
        print(f"  {mark} {path:45} wants {FILES[path][0]:10} got {', '.join(labels) or '-'}")


MakeLearnings = Callable[[Embedder | None], Learnings]


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.postgres)])
def make_learnings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeLearnings]:
    """Learnings in an in-memory store, or in a fresh Postgres database (vectors in pgvector)."""
    with ExitStack() as stack:

        def make(embedder: Embedder | None) -> Learnings:
            if request.param == "memory":
                return Learnings(InMemoryStore(), embedder)
            from tests.pg import temp_database

            url = stack.enter_context(temp_database("ra_recall"))
            settings = Settings(DATABASE_URL=url, REVIEW_AGENT_HOME=tmp_path)  # type: ignore[call-arg]
            storage = stack.enter_context(open_storage(settings))
            assert isinstance(storage.vectors, PgVectors)
            storage.embedder = embedder
            return storage.learnings()

        yield make


def test_offline_recall_on_the_labelled_set(make_learnings: MakeLearnings) -> None:
    recall, precision, got = measure(make_learnings(None))
    _print("offline (lexical + path globs)", recall, precision, got)
    assert recall >= 0.8
    # the two learnings that the hashing embedding missed reach their files
    assert "pickle" in got["src/app/serializer.py"]
    assert "docstrings" in got["tests/test_orders.py"]


@pytest.fixture
def embedding_settings(tmp_path: Path) -> Iterator[Settings]:
    with FakeOpenAI(require_api_key="sk-test-key") as fake:
        yield Settings(
            OPENAI_API_KEY="sk-test-key", OPENAI_BASE_URL=fake.base_url, REVIEW_AGENT_HOME=tmp_path
        )
        assert fake.embedding_calls > 0  # the vectors did come from the server


def test_recall_with_the_model_servers_embeddings_on_the_labelled_set(
    embedding_settings: Settings, make_learnings: MakeLearnings
) -> None:
    embedder = choose_embedder(embedding_settings)
    assert embedder is not None
    recall, precision, got = measure(make_learnings(embedder))
    _print(f"with embeddings ({embedder.id}, fake server)", recall, precision, got)
    assert recall >= 0.8


def test_unrelated_files_get_no_learning() -> None:
    learnings = Learnings(InMemoryStore(), None)
    for text in LEARNINGS.values():
        learnings.add(("repo", "acme/shop"), text)
    recall = learnings.recall([("repo", "acme/shop")])
    plain = "def f0(x):\n    print(x)  # debug\n    return x + 0 + 1\n"
    assert recall("mod00.py", parse_patch("mod00.py", _hunks(plain)).numbered).rules == []
    assert recall("README.md", parse_patch("README.md", _hunks("# demo\n")).numbered).rules == []


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("tests/", "tests/test_a.py", True),
        ("tests/", "pkg/tests/unit/test_a.py", True),
        ("tests/", "src/contests.py", False),
        ("tests/", "tests.py", False),
        ("/tests/", "pkg/tests/test_a.py", False),
        ("*.sql", "db/migrations/0001.sql", True),
        ("*.sql", "db/sql.py", False),
        ("api/*.py", "src/api/users.py", True),
        ("api/*.py", "src/apis/users.py", False),
        ("serializer.py", "src/app/serializer.py", True),
        ("serializer.py", "src/app/serializers.py", False),
    ],
)
def test_path_globs_read_as_a_person_means_them(pattern: str, path: str, matches: bool) -> None:
    assert glob_matches(pattern, path) is matches


def test_globs_are_found_in_prose_and_urls_are_not() -> None:
    text = "don't flag missing docstrings in tests/, nor in *.sql files; see https://x.org/a/b or os.path"
    assert path_globs(text) == ["tests/", "*.sql"]
    assert path_globs("keep serializer.py free of pickle, e.g. like this.") == ["serializer.py"]
