"""A real Apache Kafka broker (KRaft, single node) from Maven Central, run on the local JDK."""

from __future__ import annotations

import asyncio
import base64
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from caves_faust.devstack.process import DevstackError, ManagedProcess
from caves_faust.kafka.admin import create_topics

POM = resources.files("caves_faust.devstack") / "pom.xml"
LOG4J = resources.files("caves_faust.devstack") / "log4j.properties"
HEAP = "-Xmx768m"


@dataclass
class LocalKafka(ManagedProcess):
    controller_port: int = 0

    def __post_init__(self) -> None:
        self.controller_port = self.controller_port or self.port + 1

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    def log_files(self) -> list[Path]:
        return [self.log_file, self.home / "kafka.log"]  # kafka.log: log4j.properties

    def classpath(self) -> str:
        """The broker's runtime classpath, resolved once by Maven and cached beside the data."""
        _require("java", "a JDK 17+ (Debian: apt-get install openjdk-17-jre-headless)")
        cached = self.home / "classpath.txt"
        pom = Path(str(POM))
        if cached.exists() and cached.stat().st_mtime >= pom.stat().st_mtime:
            return cached.read_text().strip()
        _require("mvn", "Maven (Debian: apt-get install maven)")
        result = subprocess.run(
            ["mvn", "-q", "-B", "-f", str(pom), "dependency:build-classpath",
             "-Dmdep.includeScope=runtime", f"-Dmdep.outputFile={cached}"],
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise DevstackError(f"Maven could not resolve Kafka: {(result.stdout + result.stderr).strip()[-500:]}")
        return cached.read_text().strip()

    def properties(self) -> Path:
        path = self.home / "server.properties"
        path.write_text(
            "\n".join([
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                f"log.dirs={self.data_dir}",
                # Single node: internal topics cannot have more replicas than brokers.
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=8",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                # Consumers join at once instead of waiting 3 s for more members.
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=true",
                "",
            ])
        )
        return path

    def java(self, main_class: str, *args: str) -> list[str]:
        return [
            "java", HEAP, "-XX:+UseSerialGC", "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{LOG4J}", f"-Dkafka.logs.dir={self.home}",
            "-cp", self.classpath(), main_class, *args,
        ]

    def prepare(self) -> None:
        properties = self.properties()
        if (self.data_dir / "meta.properties").exists():
            return
        result = subprocess.run(
            self.java("kafka.tools.StorageTool", "format", f"--cluster-id={_kafka_uuid()}", "-c", str(properties)),
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise DevstackError(f"Kafka storage format failed: {result.stdout[-400:]}{result.stderr[-400:]}")

    def command(self) -> list[str]:
        return self.java("kafka.Kafka", str(self.properties()))

    def ready(self) -> bool:
        return super().ready() and asyncio.run(_answers_metadata(self.bootstrap))

    def create_topics(self, names: list[str], partitions: int) -> None:
        asyncio.run(create_topics(self.bootstrap, names, partitions))


def _kafka_uuid() -> str:
    # Kafka cluster ids are 16 random bytes, base64url without padding (what `kafka-storage random-uuid` prints).
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _require(program: str, what: str) -> None:
    if shutil.which(program) is None:
        raise DevstackError(
            f"`{program}` not found: install {what}, or use Docker (`docker compose up -d`), "
            "or set KAFKA_BROKER to an existing broker"
        )


async def _answers_metadata(bootstrap: str) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await admin.start()
        await admin.list_topics()
        return True
    except Exception:
        return False
    finally:
        await admin.close()
