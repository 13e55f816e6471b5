"""Configuration keys come from the library's table; the library validates keys and values."""

import pytest

import rmq


def test_config_keys_table():
    keys = rmq.config_keys()
    names = [k.name for k in keys]
    assert "name-server" in names and "producer.group" in names
    assert "producer.send-message-timeout" in names and "producer.max-message-size" in names
    assert len(set(names)) == len(names)
    for k in keys:
        assert isinstance(k, rmq.ConfigKey) and k.name and k.description
    by_name = {k.name: k for k in keys}
    assert by_name["name-server"].default == ""  # required, no default
    assert int(by_name["producer.max-message-size"].default) == 4 * 1024 * 1024


def test_config_reads_defaults_from_the_library():
    cfg = rmq.Config()
    try:
        for k in rmq.config_keys():
            if k.default:
                assert cfg[k.name] == k.default
            else:
                assert cfg.get(k.name) is None
                with pytest.raises(rmq.NotFoundError):
                    cfg[k.name]
    finally:
        cfg.close()


def test_config_set_and_get_values():
    with rmq.Config(
        {
            "name-server": "127.0.0.1:1;127.0.0.1:2",
            "producer.send-message-timeout": 1500,
            "producer.retry-next-server": True,
            "producer.group": "G" * 200,  # longer than the 64-byte first buffer
        }
    ) as cfg:
        assert cfg["name-server"] == "127.0.0.1:1;127.0.0.1:2"
        assert cfg["producer.send-message-timeout"] == "1500"
        assert cfg["producer.retry-next-server"] == "true"
        assert cfg["producer.group"] == "G" * 200


def test_unknown_config_key():
    with pytest.raises(rmq.ConfigError) as info:
        rmq.Config({"producer.no-such-key": "1"})
    assert info.value.status == rmq.Status.RMQ_ERR_UNKNOWN_CONFIG_KEY
    assert info.value.name == "RMQ_ERR_UNKNOWN_CONFIG_KEY"
    assert "producer.no-such-key" in info.value.message
    with pytest.raises(rmq.ConfigError):
        rmq.Config()["no-such-key"]


@pytest.mark.parametrize(
    "key, value",
    [
        ("producer.send-message-timeout", "soon"),
        ("producer.send-message-timeout", 0),
        ("producer.max-message-size", -1),
        ("producer.retry-next-server", "yes"),
        ("name-server", "localhost"),
        ("name-server", " ; "),
    ],
)
def test_invalid_config_value(key, value):
    with pytest.raises(rmq.ConfigError) as info:
        rmq.Config({key: value})
    assert info.value.status == rmq.Status.RMQ_ERR_INVALID_CONFIG_VALUE
    assert key in info.value.message


def test_config_argument_types_checked_before_c():
    with pytest.raises(TypeError):
        rmq.Config({"producer.send-message-timeout": 1.5})
    with pytest.raises(ValueError):
        rmq.Config({"producer.group": "a\0b"})
    with pytest.raises(TypeError):
        rmq.Config({1: "x"})


def test_producer_rejects_bad_config_without_a_broker():
    with pytest.raises(rmq.ConfigError) as info:
        rmq.Producer({"name-server": "127.0.0.1:1", "producer.group": "G", "no.such.key": "1"})
    assert info.value.status == rmq.Status.RMQ_ERR_UNKNOWN_CONFIG_KEY
    with pytest.raises(rmq.ConfigError) as info:
        rmq.Producer({"name-server": "127.0.0.1:1", "producer.group": "G", "producer.send-message-timeout": "x"})
    assert info.value.status == rmq.Status.RMQ_ERR_INVALID_CONFIG_VALUE
    with pytest.raises(rmq.InvalidArgumentError) as info:
        rmq.Producer({"name-server": "127.0.0.1:1"})  # producer.group is required
    assert "producer.group" in info.value.message
    with pytest.raises(TypeError):
        rmq.Producer("name-server=127.0.0.1:1")
