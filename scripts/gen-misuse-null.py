#!/usr/bin/env python3
"""Writes the C file of the misuse suite's NULL case from include/rmq.h.

Every exported function is parsed from the header's prototypes; for each of its pointer
parameters (handles, strings, buffers, out-parameters, callbacks, user data) one call is
generated with that parameter NULL and every other one valid: live handles of the right type
from the fixtures of tests/c/misuse/fixtures.h, real strings, buffers and out-variables. The
call must return RMQ_ERR_NULL_POINTER (a pointer-returning function: NULL), unless ALLOWED
below documents that the header allows NULL there, in which case the documented outcome is
checked instead. A prototype with a parameter type this script does not know fails the
generation, so a new function cannot silently escape the suite.

    scripts/gen-misuse-null.py include/rmq.h OUT.c
"""
import re
import sys

HANDLES = {
    "rmq_config_t", "rmq_message_t", "rmq_producer_t", "rmq_send_result_t",
    "rmq_push_consumer_t", "rmq_lite_pull_consumer_t", "rmq_message_queue_list_t",
    "rmq_received_batch_t", "rmq_received_message_t", "rmq_transaction_producer_t",
    "rmq_completion_queue_t",
}

# (function, parameter) -> (expected status or "any", why NULL is allowed there). "any" is for
# the NULL no-op destroys returning void. Everything else must be RMQ_ERR_NULL_POINTER.
ALLOWED = {
    # user data is passed through untouched: the library never reads it
    ("rmq_producer_send_batch_async", "user_data"): ("RMQ_OK", "opaque user data"),
    ("rmq_push_consumer_set_listener", "user_data"): ("RMQ_OK", "opaque user data"),
    ("rmq_push_consumer_set_orderly_listener", "user_data"): ("RMQ_OK", "opaque user data"),
    ("rmq_producer_send_async", "user_data"): ("RMQ_OK", "opaque user data"),
    ("rmq_producer_send_async_select", "user_data"): ("RMQ_OK", "opaque user data"),
    ("rmq_producer_send_async_to_queue", "user_data"): ("RMQ_OK", "opaque user data"),
    ("rmq_producer_request_async", "user_data"): ("RMQ_OK", "opaque user data"),
    ("rmq_transaction_producer_create", "user_data"): ("RMQ_OK", "opaque user data"),
    ("rmq_transaction_producer_send", "arg"): ("RMQ_OK", "opaque argument of execute"),
    ("rmq_set_logger", "user_data"): ("RMQ_OK", "opaque user data"),
    # documented "may be NULL if not wanted"
    ("rmq_producer_send_batch", "out_result"): ("RMQ_OK", "result not wanted"),
    ("rmq_producer_send_sync", "out_result"): ("RMQ_OK", "result not wanted"),
    ("rmq_producer_send_sync_select", "out_result"): ("RMQ_OK", "result not wanted"),
    ("rmq_producer_send_sync_to_queue", "out_result"): ("RMQ_OK", "result not wanted"),
    ("rmq_transaction_producer_send", "out_state"): ("RMQ_OK", "state not wanted"),
    ("rmq_transaction_producer_send", "out_result"): ("RMQ_OK", "result not wanted"),
    ("rmq_received_batch_ack_each", "delay_levels"): ("RMQ_OK", "NULL means 0 everywhere"),
    ("rmq_metrics_value", "broker"): ("RMQ_OK", "NULL sums over every broker"),
    ("rmq_completion_queue_counts", "out_owed"): ("RMQ_OK", "either count may be left out"),
    ("rmq_completion_queue_counts", "out_waiting"): ("RMQ_OK", "either count may be left out"),
    # NULL buffer: the length is written and the caller asked to try again with a buffer
    ("rmq_config_get", "buf"): ("RMQ_ERR_BUFFER_TOO_SMALL", "NULL buf asks for the length"),
    ("rmq_metrics_prometheus", "buf"): ("RMQ_ERR_BUFFER_TOO_SMALL", "NULL buf asks for the length"),
    # NULL text removes the field
    ("rmq_message_set_tags", "tags"): ("RMQ_OK", "NULL removes the tag"),
    ("rmq_message_set_keys", "keys"): ("RMQ_OK", "NULL removes the keys"),
    # NULL callback switches logging off
    ("rmq_set_logger", "callback"): ("RMQ_OK", "NULL callback removes the logger"),
    # the static tables are returned; the count is written only when asked for
    ("rmq_config_keys", "out_count"): ("nonnull", "static table; the count is optional"),
    ("rmq_status_descs", "out_count"): ("nonnull", "static table; the count is optional"),
    # destroying NULL is a no-op
    ("rmq_config_destroy", "config"): ("any", "NULL is a no-op"),
    ("rmq_message_destroy", "message"): ("any", "NULL is a no-op"),
    ("rmq_send_result_destroy", "result"): ("any", "NULL is a no-op"),
    ("rmq_push_consumer_destroy", "consumer"): ("RMQ_OK", "NULL is a no-op"),
    ("rmq_lite_pull_consumer_destroy", "consumer"): ("RMQ_OK", "NULL is a no-op"),
    ("rmq_transaction_producer_destroy", "producer"): ("RMQ_OK", "NULL is a no-op"),
    ("rmq_producer_destroy", "producer"): ("RMQ_OK", "NULL is a no-op"),
    ("rmq_message_queue_list_destroy", "list"): ("RMQ_OK", "NULL is a no-op"),
    ("rmq_received_batch_destroy", "batch"): ("RMQ_OK", "NULL is a no-op"),
    ("rmq_completion_queue_destroy", "queue"): ("RMQ_OK", "NULL is a no-op"),
}

# Functions that need a handle in another state than the usual fixture to get as far as their
# out-parameters: a message read back from the broker has ids, stored fields and user
# properties (a new message answers RMQ_ERR_NOT_FOUND before looking at them).
FIXTURE_OVERRIDES = {
    fn: {"rmq_message_t": "fx_stored_message()"}
    for fn in ("rmq_message_user_property_at", "rmq_message_msg_id", "rmq_message_offset_msg_id",
               "rmq_message_queue_id", "rmq_message_queue_offset", "rmq_message_store_timestamp",
               "rmq_message_born_timestamp")
}

# Values for non-pointer parameters, by name; strings by (function, name) first, then name.
STRINGS = {
    ("rmq_config_set", "key"): '"name-server"',
    ("rmq_config_set", "value"): "fx_namesrv()",
    ("rmq_config_get", "key"): '"name-server"',
    ("rmq_producer_query_message", "key"): '"misuse-key"',
    ("rmq_metrics_value", "name"): '"rmq_messages_sent_total"',
    ("rmq_metrics_value", "broker"): '"broker-a"',
    ("rmq_message_create_reply", "properties"): "fx_reply_properties()",
    "topic": "fx_topic()",
    "expression": '"*"',
    "name": '"color"',
    "value": '"blue"',
    "tags": '"TagA"',
    "keys": '"k1"',
    "offset_msg_id": "fx_offset_msg_id()",
}
SIZES = {
    "count": "1", "capacity": "1", "cap": "4096", "index": "0", "max_messages": "1", "max": "1",
}
INTS = {
    "timeout_ms": "200", "level": "1", "delay_ms": "1000", "delay_sec": "1",
    "epoch_ms": "fx_now_ms() + 1000", "max_num": "1", "begin_timestamp_ms": "0",
    "end_timestamp_ms": "fx_now_ms()", "offset": "0", "timestamp_ms": "0",
    "status": "0", "state": "0", "user_tag": "0",
}
SCALARS = {"size_t", "int32_t", "int64_t", "uint64_t", "rmq_status_t", "rmq_log_level_t",
           "rmq_send_status_t", "rmq_transaction_state_t"}
CALLBACKS = {
    "rmq_send_callback_t": "fx_send_callback",
    "rmq_message_listener_t": "fx_listener",
    "rmq_orderly_listener_t": "fx_orderly_listener",
    "rmq_log_callback_t": "fx_log_callback",
    "rmq_request_callback_t": "fx_request_callback",
    "rmq_transaction_checker_t": "fx_checker",
    "rmq_local_transaction_t": "fx_execute",
}
# Structs passed in by pointer.
IN_STRUCTS = {
    "rmq_message_queue_t": "fx_queue()",
    "rmq_queue_selector_t": "fx_selector()",
}


def parse(header):
    src = re.sub(r"/\*.*?\*/", "", open(header).read(), flags=re.S)
    body = src[src.index('extern "C" {'):]
    out = []
    for m in re.finditer(r"^([a-z][^;{}#()]*?)\b(rmq_\w+)\s*\(([^;]*?)\);", body, re.M | re.S):
        ret, name, params = " ".join(m.group(1).split()), m.group(2), " ".join(m.group(3).split())
        plist = []
        if params != "void":
            for p in params.split(","):
                p = p.strip()
                pm = re.match(r"^(.*?)(\w+)$", p)
                plist.append((" ".join(pm.group(1).replace("*", " * ").split()), pm.group(2)))
        out.append((ret, name, plist))
    return out


def is_pointer(ctype):
    return "*" in ctype or ctype in CALLBACKS


def base(ctype):
    return ctype.replace("const", "").replace("struct", "").replace("*", "").split()[0]


class Gen:
    def __init__(self, fn, params):
        self.fn, self.params = fn, params
        self.decls, self.after = [], []

    def value(self, i, ctype, pname):
        """A valid C expression for parameter i (declaring locals as needed)."""
        stars = ctype.count("*")
        b = base(ctype)
        if ctype in CALLBACKS:
            return CALLBACKS[ctype]
        if stars == 0:
            if ctype not in SCALARS:
                raise SystemExit(f"{self.fn}: unknown parameter type {ctype!r} of {pname}")
            if ctype == "size_t":
                return self.size(i, pname)
            if pname in INTS:
                return INTS[pname]
            if ctype in ("rmq_log_level_t",):
                return "RMQ_LOG_OFF"
            raise SystemExit(f"{self.fn}: no value for {ctype} {pname}")
        if b == "void":
            return "fx_user_data()"
        if b in HANDLES:
            const_in = ctype.startswith("const")
            if stars == 1:
                return FIXTURE_OVERRIDES.get(self.fn, {}).get(b, f"fx_{b[4:-2]}()")
            if stars == 2 and "* const *" in ctype:
                return f"fx_{b[4:-2]}_array()"
            if stars == 2:
                v = f"o{i}"
                self.decls.append(f"{'const ' if const_in else ''}{b} *{v} = NULL;")
                if not const_in:
                    self.after.append(f"fx_release_{b[4:-2]}({v});")
                if pname == "out_messages":
                    self.decls[-1] = f"{b} *{v}[1] = {{NULL}};"
                    self.after[-1] = f"fx_release_message({v}[0]);"
                    return v
                return f"&{v}"
        if b == "char":
            if ctype == "const char *":
                s = STRINGS.get((self.fn, pname), STRINGS.get(pname))
                if s is None:
                    raise SystemExit(f"{self.fn}: no string for {pname}")
                return s
            if ctype == "char *":
                self.decls.append("char buf[4096];")
                return "buf"
            if ctype == "const char * *":
                self.decls.append(f"const char *o{i} = NULL;")
                return f"&o{i}"
        if b == "uint8_t":
            if ctype == "const uint8_t *":
                return '(const uint8_t *)"body"'
            if ctype == "const uint8_t * *":
                self.decls.append(f"const uint8_t *o{i} = NULL;")
                return f"&o{i}"
        if b in SCALARS or b in ("rmq_consume_status_t", "bool"):
            if ctype.startswith("const"):
                self.decls.append(f"{b} v{i}[1] = {{0}};")
                return f"v{i}"
            self.decls.append(f"{b} o{i} = 0;")
            return f"&o{i}"
        if b in IN_STRUCTS and ctype.startswith("const") and stars == 1:
            return IN_STRUCTS[b]
        if b in ("rmq_message_queue_t", "rmq_received_view_t") and stars == 2:
            self.decls.append(f"const {b} *o{i} = NULL;")
            return f"&o{i}"
        if b == "rmq_completion_t" and stars == 1:
            self.decls.append(f"{b} o{i}[1];")
            return f"o{i}"
        if b == "rmq_send_result_view_t" and stars == 1:
            self.decls.append(f"{b} o{i};")
            return f"&o{i}"
        raise SystemExit(f"{self.fn}: unknown parameter type {ctype!r} of {pname}")

    def size(self, i, pname):
        if pname in SIZES:
            return SIZES[pname]
        # a length follows the pointer it measures: the length of that value
        prev_type, prev_name = self.params[i - 1]
        if pname.endswith("len") and prev_type == "const char *":
            s = STRINGS.get((self.fn, prev_name), STRINGS.get(prev_name))
            return f"strlen({s})"
        if pname.endswith("len") and prev_type == "const uint8_t *":
            return "4"
        raise SystemExit(f"{self.fn}: no value for size_t {pname}")


def generate(funcs):
    lines = [
        "/* Generated by scripts/gen-misuse-null.py from include/rmq.h; do not edit. */",
        '#include "fixtures.h"',
        "",
        "#include <string.h>",
        "",
        "void null_calls(void) {",
    ]
    n = 0
    for ret, fn, params in funcs:
        for i, (ctype, pname) in enumerate(params):
            if not is_pointer(ctype):
                continue
            g = Gen(fn, params)
            args = []
            for j, (ct, pn) in enumerate(params):
                args.append("NULL" if j == i else g.value(j, ct, pn))
            call = f"{fn}({', '.join(args)})"
            expect, why = ALLOWED.get((fn, pname), ("RMQ_ERR_NULL_POINTER", None))
            lines.append(f"    {{ /* {fn}: {pname} = NULL{'; allowed: ' + why if why else ''} */")
            lines.append(f'        fx_before("{fn}", "{pname}");')
            for d in g.decls:
                lines.append(f"        {d}")
            if ret == "void":
                lines.append(f"        {call};")
                lines.append(f'        fx_expect_void("{fn}", "{pname}");')
            elif ret == "rmq_status_t":
                lines.append(f"        rmq_status_t s = {call};")
                lines.append(f'        fx_expect_status("{fn}", "{pname}", s, {expect});')
            elif "*" in ret:
                lines.append(f"        const void *r = {call};")
                if expect == "nonnull":
                    lines.append(f'        fx_expect_nonnull("{fn}", "{pname}", r);')
                else:
                    lines.append(f'        fx_expect_null("{fn}", "{pname}", r);')
            else:
                raise SystemExit(f"{fn}: unknown return type {ret}")
            for a in g.after:
                lines.append(f"        {a}")
            lines.append("    }")
            n += 1
    lines.append("}")
    lines.append("")
    lines.append(f"const int null_call_count = {n};")
    lines.append(f"const int null_function_count = {len(funcs)};")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    header, out = sys.argv[1], sys.argv[2]
    text = generate(parse(header))
    with open(out, "w") as f:
        f.write(text)
