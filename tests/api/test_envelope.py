"""The ESD envelope's bytes: Starlette's compact JSON, with DynamoDB-style Decimal values as strings."""

from decimal import Decimal

from openesd.api.envelope import esd_response


def test_decimals_are_strings_and_the_rest_is_compact_json():
    answer = esd_response(200, {"n": Decimal("1.50"), "nested": [{"v": Decimal("2")}, (1, "é")]})
    assert answer.body == '{"statusCode":200,"data":{"n":"1.50","nested":[{"v":"2"},[1,"é"]]},"message":"OK"}'.encode()
