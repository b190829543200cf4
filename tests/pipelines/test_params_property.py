"""Property: any params dict, however mangled, either validates for every stage or fails with a
ConfigError; never another exception (a KeyError or TypeError would reach users as a traceback)."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.config import ConfigError
from pipelines.params import check_top_level
from pipelines.validate import validate_params
from tests.pipelines.params_edit import tiny_params

TINY = tiny_params()

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**40), max_value=2**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["Hopper-v5", "bc", "td3_bc", "random", "medium", "step_1000", "auto"])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8) | st.integers(0, 3), inner, max_size=4)
    ),
    max_leaves=8,
)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path in the params tree (dict keys and list indices)."""
    found = []
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else []
    )
    for key, child in items:
        found.append((*prefix, key))
        found.extend(paths(child, (*prefix, key)))
    return found


ALL_PATHS = paths(TINY)


def replaceable(node: dict[Any, Any] | list[Any], key: Any) -> bool:
    """Whether `node[key] = value` replaces an entry. An earlier mutation may have put a list where
    the path expects a dict: a string key never indexes a list, nor does an index past its end."""
    if isinstance(node, dict):
        return True
    return isinstance(key, int) and 0 <= key < len(node)


@st.composite
def mutated_params(draw: st.DrawFn) -> Any:
    params = copy.deepcopy(TINY)
    for _ in range(draw(st.integers(1, 4))):
        target = draw(st.sampled_from(ALL_PATHS))
        node: Any = params
        try:
            for part in target[:-1]:
                node = node[part]
            container_ok = isinstance(node, dict | list)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation replaced this branch
        if not container_ok:
            continue
        action = draw(st.sampled_from(["replace", "delete", "add_key"]))
        last = target[-1]
        if action == "replace" and replaceable(node, last):
            node[last] = draw(values)
        elif action == "delete" and isinstance(node, dict):
            node.pop(last, None)
        elif action == "add_key" and isinstance(node, dict):
            node[draw(st.text(min_size=1, max_size=10))] = draw(values)
    return params


def test_a_list_where_a_mapping_was_is_not_indexed_by_its_keys() -> None:
    """The strategy's own bug once: `key < len(node)` compared a string key with an int."""
    assert not replaceable([1, 2], "steps")
    assert not replaceable([1, 2], 2)
    assert replaceable([1, 2], 1)
    assert replaceable({"steps": 1}, "steps")


def validates_or_config_error(params: Any) -> None:
    try:
        validate_params(check_top_level(params))
    except ConfigError as error:
        assert str(error).startswith("params.yaml"), error


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_params())
def test_mutated_params_validate_or_raise_config_error(params: Any) -> None:
    validates_or_config_error(params)


@settings(max_examples=150, deadline=None)
@given(values)
def test_any_document_validates_or_raises_config_error(document: Any) -> None:
    validates_or_config_error(document)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(k for k, v in TINY.items() if isinstance(v, dict))), values)
def test_any_section_body_validates_or_raises_config_error(name: str, body: Any) -> None:
    params = copy.deepcopy(TINY)
    params[name] = body
    validates_or_config_error(params)


def test_ci_draws_the_same_examples_every_run() -> None:
    """Under CI=true (how CI runs .ci/run) the conftest's profile derandomises every property."""
    probe = "import tests.conftest; from hypothesis import settings; print(settings.default)"
    env = {**os.environ, "CI": "true"}
    env.pop("HYPOTHESIS_PROFILE", None)
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert "derandomize=True" in out and "database=None" in out, out
