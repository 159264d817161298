import pytest

from connectomix.graph import Connectome
from connectomix.testing import toy_connectome as make_toy


@pytest.fixture
def toy() -> Connectome:
    return make_toy()
