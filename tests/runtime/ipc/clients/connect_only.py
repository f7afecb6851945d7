"""Connects with the awsiotsdk client v2 (socket and token from the environment) and reports the outcome."""

from __future__ import annotations

import json

from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2


def main() -> None:
    try:
        client = GreengrassCoreIPCClientV2()
    except Exception as error:
        print(json.dumps({"connected": False, "error": type(error).__name__}), flush=True)
        return
    client.close()
    print(json.dumps({"connected": True}), flush=True)


if __name__ == "__main__":
    main()
