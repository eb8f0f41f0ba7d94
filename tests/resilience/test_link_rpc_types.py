"""Each real service refuses RPC arguments of the wrong type at the boundary (issue 15 item 2):
``ok: false`` naming the argument, the expected type and what was sent."""

from __future__ import annotations

import pytest
from runtime.exception import RPCError
from runtime.remote import Client, Connection

from tests.resilience.services import ServiceProcess
from tests.support.wait import wait_for_async

CASES = {
    "device": [
        ("read", ["12", "duty_cycle_a"], {},
         "argument 'params' expects list[str] | None, got str 'duty_cycle_a'"),
        ("heartbeat", ["12"], {"timeout": "2"}, "argument 'timeout' expects float, got str '2'"),
        ("ping", [12], {}, "argument 'uids' expects str | list[str] | None, got int 12"),
    ],
    "broker": [
        ("set_alias", ["koala", 12], {}, "argument 'uid' expects str, got int 12"),
        ("set_option", [["data_rate"]], {}, "argument 'options' expects dict[str, Any], got list"),
    ],
    "executor": [
        ("set_mode", [1], {}, "argument 'mode' expects str, got int 1"),
        ("upload", [b"print(1)"], {}, "argument 'source' expects str, got bytes"),
    ],
}


@pytest.mark.parametrize("name", sorted(CASES))
async def test_wrong_argument_types_are_refused_by_every_service(
    mosquitto_broker, robot_name, tmp_path, name
):
    async with ServiceProcess(name, mosquitto_broker.url, robot_name, tmp_path) as service, \
            Connection(mosquitto_broker.url, robot=robot_name, connect_timeout=20) as caller:
        await wait_for_async(lambda: service.said(f"{name} service ready"), timeout=60,
                             message=service.output)
        client = Client(caller)
        for method, args, kwargs, expected in CASES[name]:
            with pytest.raises(RPCError) as info:
                await client.request(name, method, args, kwargs, timeout=20)
            assert expected in str(info.value), str(info.value)
            assert info.value.remote_type == "RPCError"
        assert not service.said("Traceback")  # refused at the boundary, not inside a handler
