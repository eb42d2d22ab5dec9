from pydantic import Field

from ftbridge.configtypes import ConfigPath, Secret
from ftbridge.drivers import DriverConfig


class ExampleConfig(DriverConfig):
    url: str = Field(description="https://manager.example.net/api")
    user: str
    password: Secret  # { env = "VAR" } or { file = "/path" }
    ca_file: ConfigPath | None = None
    verify_tls: bool = True
    timeout: float = 30.0
