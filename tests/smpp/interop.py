"""An application on the lab's SMSC through smpplib (PyPI), an SMPP 3.4 client nobody here
wrote; driven by tests/e2e/smpp_interop.rs.

Usage: interop.py HOST PORT. A wrong password first (its PDUError status is reported), then
bind_transceiver as lab-app, submit_sm to +15550002 with registered_delivery=1: a GSM text,
a UCS-2 Korean text (data_coding 8) and a long text cut by smpplib's own gsm.make_parts (UDH
concatenation, esm_class 0x40); every receipt (deliver_sm, esm_class 0x04) is collected.
Then it prints `READY_FOR_MO` and waits for a phone's deliver_sm. Last line: a JSON summary.
Every wait is bounded (DEADLINE_S).
"""

import json
import sys
import time

import smpplib.client
import smpplib.consts
import smpplib.exceptions
import smpplib.gsm

DEADLINE_S = 30
# esm_class message type "SMSC Delivery Receipt" (SMPP 3.4 §5.2.12; smpplib has no name for it).
ESM_DELIVERY_RECEIPT = 0x04
GSM_TEXT = "Hello bob from smpplib: 100% [GSM] 5\u20ac"
KOREAN_TEXT = "\uc548\ub155\ud558\uc138\uc694 \ubc25, SMPP\uc5d0\uc11c \uc654\uc5b4\uc694"
LONG_TEXT = " ".join("part%03d of a long text from smpplib" % i for i in range(6))


def text_of(pdu):
    """The short_message of a deliver_sm as text, by its data_coding."""
    raw = pdu.short_message or b""
    if pdu.data_coding == smpplib.consts.SMPP_ENCODING_ISO10646:
        return raw.decode("utf-16-be")
    return raw.decode("latin-1")


def bad_bind(host, port):
    """A bind with a wrong password: the PDUError's command_status, or None if it bound."""
    c = smpplib.client.Client(host, port, timeout=10)
    c.connect()
    try:
        c.bind_transceiver(system_id="lab-app", password="wrong")
    except smpplib.exceptions.PDUError as e:
        return {"status": e.args[1], "message": str(e.args[0])}
    finally:
        c.disconnect()
    return None


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    summary = {
        "bad_bind": bad_bind(host, port),
        "texts": {"gsm": GSM_TEXT, "ucs2": KOREAN_TEXT, "long": LONG_TEXT},
        "submitted": [],
        "receipts": [],
        "mo": [],
    }
    # submit_sm sequence -> which text (and part) it carried.
    sent = {}

    client = smpplib.client.Client(host, port, timeout=2)

    def on_sent(pdu, **_):
        what = sent.get(pdu.sequence)
        summary["submitted"].append(
            {"seq": pdu.sequence, "status": pdu.status, "id": pdu.message_id.decode(), "what": what}
        )

    def on_received(pdu, **_):
        esm = pdu.esm_class
        if esm & 0x3C == ESM_DELIVERY_RECEIPT:
            rid = pdu.receipted_message_id
            summary["receipts"].append(
                {
                    "esm_class": esm,
                    "text": text_of(pdu),
                    "receipted_message_id": rid.decode() if isinstance(rid, bytes) else rid,
                    "message_state": pdu.message_state,
                    "source": pdu.source_addr.decode(),
                }
            )
        else:
            summary["mo"].append(
                {
                    "source": pdu.source_addr.decode(),
                    "source_ton": pdu.source_addr_ton,
                    "destination": pdu.destination_addr.decode(),
                    "data_coding": pdu.data_coding,
                    "text": text_of(pdu),
                }
            )
        return smpplib.consts.SMPP_ESME_ROK

    client.set_message_sent_handler(on_sent)
    client.set_message_received_handler(on_received)
    client.connect()
    client.bind_transceiver(system_id="lab-app", password="app-pw")

    messages = [
        ("gsm", GSM_TEXT, smpplib.consts.SMPP_ENCODING_DEFAULT),
        ("ucs2", KOREAN_TEXT, smpplib.consts.SMPP_ENCODING_ISO10646),
        ("long", LONG_TEXT, smpplib.consts.SMPP_ENCODING_DEFAULT),
    ]
    for name, text, encoding in messages:
        parts, coding, esm_class = smpplib.gsm.make_parts(text, encoding=encoding)
        for i, part in enumerate(parts):
            pdu = client.send_message(
                source_addr_ton=smpplib.consts.SMPP_TON_UNK,
                source_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
                source_addr="4000",
                dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
                dest_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
                destination_addr="15550002",
                short_message=part,
                data_coding=coding,
                esm_class=esm_class,
                registered_delivery=smpplib.consts.SMPP_SMSC_DELIVERY_RECEIPT_BOTH,
            )
            sent[pdu.sequence] = {"name": name, "part": i + 1, "parts": len(parts), "esm_class": esm_class, "data_coding": coding}

    def pump(until):
        end = time.monotonic() + DEADLINE_S
        while not until() and time.monotonic() < end:
            client.read_once()

    pump(lambda: len(summary["submitted"]) == len(sent) and len(summary["receipts"]) >= len(sent))
    print("READY_FOR_MO", flush=True)
    pump(lambda: len(summary["mo"]) >= 1)
    client.unbind()
    client.disconnect()
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
