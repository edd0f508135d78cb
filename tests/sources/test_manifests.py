"""Reading inputs: files, directories, stdin, multi-document YAML, kind: List, JSON."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from sourceip.errors import InputError, ManifestError
from sourceip.sources import cluster_from_objects, load_cluster
from sourceip.sources.convert import key_path, parse_path

NODE = """
apiVersion: v1
kind: Node
metadata: {{name: {name}}}
status:
  addresses: [{{type: InternalIP, address: {ip}}}]
"""


def node_doc(name: str, ip: str) -> str:
    return NODE.format(name=name, ip=ip)


def node_obj(name: str, ip: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}]}}


def test_multi_document_yaml_with_empty_documents(write) -> None:
    p = write("c.yaml", "---\n" + node_doc("a", "10.0.0.1") + "---\n---\n"
              + node_doc("b", "10.0.0.2"))
    c = load_cluster([str(p)])
    assert [n.name for n in c.nodes] == ["a", "b"]
    assert str(c.nodes[1].internal_ips[0]) == "10.0.0.2"


def test_kind_list_yaml_and_typed_lists(write) -> None:
    p = write("l.yaml", """
        apiVersion: v1
        kind: NodeList
        items:
        - apiVersion: v1
          kind: Node
          metadata: {name: a}
        - apiVersion: v1
          kind: Node
          metadata: {name: b}
        """)
    assert [n.name for n in load_cluster([str(p)]).nodes] == ["a", "b"]


def test_kind_list_json_as_kubectl_prints_it(tmp_path: Path) -> None:
    doc = {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
           "items": [node_obj("a", "10.0.0.1"), node_obj("b", "10.0.0.2")]}
    p = tmp_path / "all.json"
    p.write_text(json.dumps(doc, indent=4))
    assert [n.name for n in load_cluster([str(p)]).nodes] == ["a", "b"]


def test_json_top_level_array(tmp_path: Path) -> None:
    p = tmp_path / "arr.json"
    p.write_text(json.dumps([node_obj("a", "10.0.0.1")]))
    assert [n.name for n in load_cluster([str(p)]).nodes] == ["a"]


def test_yaml_flow_mapping_in_yaml_file_is_not_taken_for_broken_json(write) -> None:
    p = write("flow.yaml", "{apiVersion: v1, kind: Node, metadata: {name: a}}\n")
    assert [n.name for n in load_cluster([str(p)]).nodes] == ["a"]


def test_directory_sorted_non_recursive_and_other_files_ignored(write, tmp_path: Path) -> None:
    write("d/b.yaml", node_doc("from-b", "10.0.0.2"))
    write("d/a.yml", node_doc("from-a", "10.0.0.1"))
    (tmp_path / "d" / "c.json").write_text(json.dumps(node_obj("from-c", "10.0.0.3")))
    write("d/README.md", "not a manifest")
    write("d/sub/x.yaml", node_doc("nested", "10.0.0.9"))
    c = load_cluster([str(tmp_path / "d")])
    assert [n.name for n in c.nodes] == ["from-a", "from-b", "from-c"]
    c = load_cluster([str(tmp_path / "d")], recursive=True)
    assert [n.name for n in c.nodes] == ["from-a", "from-b", "from-c", "nested"]


def test_empty_directory_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError, match="no .yaml, .yml or .json files"):
        load_cluster([str(tmp_path / "empty")])


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as ei:
        load_cluster([str(tmp_path / "nope.yaml")])
    assert str(ei.value) == f"{tmp_path / 'nope.yaml'}: no such file or directory"


def test_stdin_and_files_together(write) -> None:
    p = write("a.yaml", node_doc("a", "10.0.0.1"))
    c = load_cluster([str(p), "-"], stdin=io.StringIO(node_doc("b", "10.0.0.2")))
    assert [n.name for n in c.nodes] == ["a", "b"]


def test_stdin_error_names_stdin_and_line() -> None:
    text = node_doc("a", "10.0.0.1") + "---\n" + node_doc("b", "10.0.0.999")
    with pytest.raises(InputError) as ei:
        load_cluster(["-"], stdin=io.StringIO(text))
    assert str(ei.value) == (
        "<stdin>:13: status.addresses[0].address: '10.0.0.999' is not a valid IP address")


def test_broken_yaml_has_file_and_line(write) -> None:
    p = write("bad.yaml", """
        apiVersion: v1
        kind: Service
        metadata:
          name: a
        spec:
          ports: [80
        """)
    with pytest.raises(ManifestError) as ei:
        load_cluster([str(p)])
    assert ei.value.file == str(p)
    assert ei.value.line == 6  # the line of the unclosed "[", not the end of the file
    assert "invalid YAML" in ei.value.message


def test_broken_json_has_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.json"
    p.write_text('{\n  "kind": "Node",\n  "metadata": {"name": "a",}\n}\n')
    with pytest.raises(ManifestError) as ei:
        load_cluster([str(p)])
    assert (ei.value.file, ei.value.line) == (str(p), 3)
    assert ei.value.message.startswith("invalid JSON")


def test_document_that_is_not_a_mapping(write) -> None:
    p = write("x.yaml", node_doc("a", "10.0.0.1") + "---\n- just\n- a list\n")
    with pytest.raises(ManifestError) as ei:
        load_cluster([str(p)])
    assert str(ei.value) == (
        f"{p}:7: expected a Kubernetes object (a mapping with apiVersion and kind), got a list")


def test_object_without_kind(write) -> None:
    p = write("x.yaml", "apiVersion: v1\nmetadata:\n  name: a\n")
    with pytest.raises(ManifestError) as ei:
        load_cluster([str(p)])
    assert str(ei.value) == f"{p}:1: kind: is required: every object needs a kind"


def test_not_utf8(tmp_path: Path) -> None:
    p = tmp_path / "x.yaml"
    p.write_bytes(b"kind: Node\nmetadata: {name: \xff}\n")
    with pytest.raises(ManifestError, match="not UTF-8"):
        load_cluster([str(p)])


def test_cluster_from_objects_expands_lists_and_names_source() -> None:
    c = cluster_from_objects([{"kind": "List", "items": [node_obj("a", "10.0.0.1")]}])
    assert [n.name for n in c.nodes] == ["a"]
    with pytest.raises(InputError) as ei:
        cluster_from_objects([node_obj("a", "bad")], source="fixture")
    assert str(ei.value) == "fixture: status.addresses[0].address: 'bad' is not a valid IP address"


@pytest.mark.parametrize("path", [
    "spec.ports[0].nodePort",
    'metadata.labels["kubernetes.io/service-name"]',
    'data["config.conf"].iptables.masqueradeBit',
    'metadata.annotations["a\\"b"]',
])
def test_field_paths_round_trip(path: str) -> None:
    segs = parse_path(path)
    rebuilt = ""
    for s in segs:
        rebuilt = f"{rebuilt}[{s}]" if isinstance(s, int) else key_path(rebuilt, s)
    assert rebuilt == path
