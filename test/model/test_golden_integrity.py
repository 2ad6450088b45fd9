"""The vendored golden fixtures are byte-identical to the ones the official code produced."""
import hashlib
import json

from model.golden import GOLDEN


def test_every_fixture_file_matches_the_manifest():
    manifest = json.loads((GOLDEN / 'manifest.json').read_text())
    assert len(manifest) >= 25
    for name, entry in manifest.items():
        data = (GOLDEN / name).read_bytes()
        assert len(data) == entry['bytes'], name
        assert hashlib.sha256(data).hexdigest() == entry['sha256'], name
