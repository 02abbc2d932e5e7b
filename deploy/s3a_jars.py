"""Install the S3A connector that matches the Hadoop bundled with pyspark (run by the Dockerfile at build time).

``hadoop-aws`` only works with the exact Hadoop release it was built with, and with the AWS SDK version that
release declares (https://hadoop.apache.org/docs/current/hadoop-aws/tools/hadoop-aws/troubleshooting_s3a.html).
So nothing here is a hard-coded version:

1. the Hadoop version is read from the name of ``hadoop-client-api-<version>.jar`` in ``$SPARK_HOME/jars``;
2. ``hadoop-aws-<version>.pom`` and its parent POMs (``hadoop-project``, ...) are read from Maven Central;
3. the jars installed are ``hadoop-aws`` plus its declared runtime dependencies (scope compile or runtime, not
   optional, outside ``org.apache.hadoop*``, which pyspark's shaded Hadoop client jars already provide), with
   versions resolved the way Maven does: the dependency's own version, else the parents'
   ``dependencyManagement``, with ``${property}`` references expanded from the POM chain. For Hadoop 3.4+ that is
   the AWS SDK v2 ``bundle`` (shaded, self-contained) plus the small ``analyticsaccelerator-s3`` and
   ``wildfly-openssl`` jars hadoop-aws also declares; their own dependencies are not followed.

The SDK v1 (``com.amazonaws``) is never installed: if the POM asks for it, or a v1 jar is already present, the
build fails instead of mixing SDK generations. Every jar is checked against Maven's ``.sha1`` before it is
moved into place. Standard library only, so it runs before anything else is installed.

Usage: ``python s3a_jars.py SPARK_JARS_DIR [--repo URL]`` (``--repo`` defaults to ``$MAVEN_REPO_URL`` or Maven
Central, e.g. for a mirror).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
import tempfile
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.client import HTTPResponse
from pathlib import Path

MAVEN_CENTRAL = "https://repo1.maven.org/maven2"
HADOOP_GROUP = "org.apache.hadoop"
SDK_V1_GROUP = "com.amazonaws"
RUNTIME_SCOPES = ("compile", "runtime")

_HADOOP_CLIENT_API = re.compile(r"^hadoop-client-api-(?P<version>\d[\w.\-]*)\.jar$")
_PROPERTY_REF = re.compile(r"\$\{([^}]+)\}")
_CHUNK_BYTES = 1024 * 1024


class ResolutionError(Exception):
    """The connector's jars cannot be determined or verified; the image must not be built."""


@dataclass(frozen=True)
class Artifact:
    group: str
    artifact: str
    version: str

    def path(self, extension: str) -> str:
        """Path of this artifact's file under a Maven repository root."""
        directory = f"{self.group.replace('.', '/')}/{self.artifact}/{self.version}"
        return f"{directory}/{self.artifact}-{self.version}.{extension}"

    @property
    def jar_name(self) -> str:
        return f"{self.artifact}-{self.version}.jar"

    def __str__(self) -> str:
        return f"{self.group}:{self.artifact}:{self.version}"


@dataclass(frozen=True)
class Dependency:
    group: str
    artifact: str
    version: str | None = None
    scope: str | None = None
    type: str = "jar"
    optional: bool = False


@dataclass
class Pom:
    """The parts of a POM that decide which jars a dependency needs."""

    group: str | None
    version: str | None
    parent: Artifact | None
    properties: dict[str, str] = field(default_factory=dict)
    #: dependencyManagement, keyed like Maven's (groupId, artifactId, type)
    managed: dict[tuple[str, str, str], Dependency] = field(default_factory=dict)
    dependencies: list[Dependency] = field(default_factory=list)


def bundled_hadoop_version(jars_dir: Path) -> str:
    """The Hadoop version pyspark ships, from the one ``hadoop-client-api-<version>.jar`` in ``jars_dir``."""
    versions = sorted(m["version"] for p in jars_dir.iterdir() if (m := _HADOOP_CLIENT_API.match(p.name)))
    if len(versions) != 1:
        raise ResolutionError(f"expected one hadoop-client-api-*.jar in {jars_dir}, found {versions or 'none'}")
    return versions[0]


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child_text(element: ET.Element, name: str) -> str | None:
    for child in element:
        if _local_name(child.tag) == name:
            return (child.text or "").strip()
    return None


def _child(element: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in element if _local_name(c.tag) == name), None)


def _dependencies(container: ET.Element | None) -> list[Dependency]:
    if container is None:
        return []
    return [
        Dependency(
            group=_child_text(d, "groupId") or "",
            artifact=_child_text(d, "artifactId") or "",
            version=_child_text(d, "version"),
            scope=_child_text(d, "scope"),
            type=_child_text(d, "type") or "jar",
            optional=(_child_text(d, "optional") or "false").lower() == "true",
        )
        for d in container
        if _local_name(d.tag) == "dependency"
    ]


def parse_pom(xml_text: str) -> Pom:
    root = ET.fromstring(xml_text)
    parent_el = _child(root, "parent")
    parent = None
    if parent_el is not None:
        parent = Artifact(
            _child_text(parent_el, "groupId") or "",
            _child_text(parent_el, "artifactId") or "",
            _child_text(parent_el, "version") or "",
        )
    properties_el = _child(root, "properties")
    properties = {} if properties_el is None else {_local_name(p.tag): (p.text or "").strip() for p in properties_el}
    management = _child(root, "dependencyManagement")
    managed = _dependencies(None if management is None else _child(management, "dependencies"))
    return Pom(
        group=_child_text(root, "groupId"),
        version=_child_text(root, "version"),
        parent=parent,
        properties=properties,
        managed={(d.group, d.artifact, d.type): d for d in managed},
        dependencies=_dependencies(_child(root, "dependencies")),
    )


def pom_chain(artifact: Artifact, fetch_text: Callable[[str], str]) -> list[Pom]:
    """The POM of ``artifact`` followed by its parents, nearest first."""
    chain = []
    coordinates: Artifact | None = artifact
    while coordinates is not None:
        if len(chain) > 20:
            raise ResolutionError(f"parent chain of {artifact} is too long (a cycle?)")
        pom = parse_pom(fetch_text(coordinates.path("pom")))
        chain.append(pom)
        coordinates = pom.parent
    return chain


def effective_properties(chain: list[Pom]) -> dict[str, str]:
    """Properties as Maven sees them for ``chain[0]``: the nearest POM wins; ``project.*`` are the child's."""
    child = chain[0]
    properties: dict[str, str] = {}
    for pom in reversed(chain):
        properties.update(pom.properties)
    version = child.version or (child.parent.version if child.parent else "")
    group = child.group or (child.parent.group if child.parent else "")
    properties.update({"project.version": version, "version": version, "project.groupId": group})
    if child.parent:
        properties["project.parent.version"] = child.parent.version
    return properties


def interpolate(value: str, properties: Mapping[str, str]) -> str:
    """Expand ``${name}`` references (recursively); an unknown name is an error, not a silent blank."""
    for _ in range(10):
        names = _PROPERTY_REF.findall(value)
        if not names:
            return value
        missing = [n for n in names if n not in properties]
        if missing:
            raise ResolutionError(f"undefined POM properties {missing} in {value!r}")
        value = _PROPERTY_REF.sub(lambda m: properties[m.group(1)], value)
    raise ResolutionError(f"POM property references nest too deeply in {value!r}")


def runtime_dependencies(chain: list[Pom]) -> list[Artifact]:
    """The third-party jars ``chain[0]`` needs at run time, versions resolved through the parents."""
    properties = effective_properties(chain)
    managed: dict[tuple[str, str, str], Dependency] = {}
    for pom in reversed(chain):
        managed.update(pom.managed)
    needed = []
    for dep in chain[0].dependencies:
        rule = managed.get((dep.group, dep.artifact, dep.type))
        scope = dep.scope or (rule.scope if rule else None) or "compile"
        if scope not in RUNTIME_SCOPES or dep.optional or dep.type != "jar" or dep.group.startswith(HADOOP_GROUP):
            continue
        version = dep.version or (rule.version if rule else None)
        if not version:
            raise ResolutionError(f"no version for {dep.group}:{dep.artifact} in the POM or its parents")
        needed.append(Artifact(dep.group, dep.artifact, interpolate(version, properties)))
    return needed


def connector_jars(hadoop_version: str, fetch_text: Callable[[str], str]) -> list[Artifact]:
    """``hadoop-aws`` at ``hadoop_version`` and the runtime jars its POM declares; refuses the v1 SDK."""
    hadoop_aws = Artifact(HADOOP_GROUP, "hadoop-aws", hadoop_version)
    dependencies = runtime_dependencies(pom_chain(hadoop_aws, fetch_text))
    v1 = [str(a) for a in dependencies if a.group == SDK_V1_GROUP]
    if v1:
        raise ResolutionError(f"{hadoop_aws} needs the AWS SDK v1 ({', '.join(v1)}); this image only ships SDK v2")
    if not any(a.group == "software.amazon.awssdk" and a.artifact == "bundle" for a in dependencies):
        raise ResolutionError(f"{hadoop_aws} declares no software.amazon.awssdk:bundle dependency")
    return [hadoop_aws, *dependencies]


def _open_url(url: str) -> HTTPResponse:
    """``urlopen`` whose errors name the URL (urllib's own messages do not)."""
    try:
        return urllib.request.urlopen(url, timeout=60)
    except OSError as exc:
        raise ResolutionError(f"{url}: {exc}") from exc


def install_verified(url: str, target: Path, expected_sha1: str) -> None:
    """Stream ``url`` into a temporary file beside ``target``; rename it into place only if its sha1 matches."""
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha1()
        with os.fdopen(fd, "wb") as out, _open_url(url) as response:
            for chunk in iter(lambda: response.read(_CHUNK_BYTES), b""):
                out.write(chunk)
                digest.update(chunk)
        if digest.hexdigest() != expected_sha1:
            raise ResolutionError(f"{url}: sha1 {digest.hexdigest()} does not match the published {expected_sha1}")
        tmp.chmod(0o644)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def install_connector(jars_dir: Path, repo_url: str) -> list[Path]:
    """Put the connector jars into ``jars_dir`` (pyspark's ``$SPARK_HOME/jars``); return their paths."""
    present_v1 = sorted(p.name for p in jars_dir.glob("aws-java-sdk*.jar"))
    if present_v1:
        raise ResolutionError(f"{jars_dir} already holds AWS SDK v1 jars {present_v1}; refusing to mix SDK versions")
    base = repo_url.rstrip("/")

    def fetch_text(path: str) -> str:
        with _open_url(f"{base}/{path}") as response:
            return response.read().decode("utf-8")

    installed = []
    for artifact in connector_jars(bundled_hadoop_version(jars_dir), fetch_text):
        url = f"{base}/{artifact.path('jar')}"
        published = fetch_text(artifact.path("jar.sha1")).split()
        if not published:
            raise ResolutionError(f"{url}.sha1 is empty")
        target = jars_dir / artifact.jar_name
        install_verified(url, target, published[0].lower())
        print(f"installed {artifact} -> {target}", flush=True)
        installed.append(target)
    return installed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("jars_dir", type=Path, help="pyspark's jars directory ($SPARK_HOME/jars)")
    parser.add_argument("--repo", default=os.environ.get("MAVEN_REPO_URL") or MAVEN_CENTRAL, help="Maven repository")
    args = parser.parse_args(argv)
    try:
        install_connector(args.jars_dir, args.repo)
    except (ResolutionError, OSError, ET.ParseError) as exc:
        print(f"s3a_jars: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
