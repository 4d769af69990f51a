-- HEPv3 (HEP3/EEP, sipcapture "HEP3 Network Protocol Specification") dissector for Wireshark
-- and tshark, which have none built in (Debian's 4.0 has no "hep" protocol). Written for
-- rcslab's `up --hep`; decodes the generic chunks and hands the payload to the SIP or Diameter
-- dissector by the protocol type chunk (0x01 SIP, 0x38 Diameter).
--
--   tshark -X lua_script:scripts/hep3.lua -r capture.pcap -d udp.port==9060,hep \
--          -T fields -e hep.node_name -e sip.Method -e diameter.cmd.code
--
-- or copy it into ~/.local/lib/wireshark/plugins/ for Wireshark. UDP port 9060 is HEP by
-- default; `-d udp.port==PORT,hep` selects another.

local hep = Proto("hep", "HEPv3 (Homer Encapsulation Protocol)")

local f = {
    family = ProtoField.uint8("hep.ip_family", "IP family"),
    ip_proto = ProtoField.uint8("hep.ip_proto", "IP protocol"),
    src_ip = ProtoField.ipv4("hep.src_ip", "Source IPv4"),
    dst_ip = ProtoField.ipv4("hep.dst_ip", "Destination IPv4"),
    src_ip6 = ProtoField.ipv6("hep.src_ip6", "Source IPv6"),
    dst_ip6 = ProtoField.ipv6("hep.dst_ip6", "Destination IPv6"),
    src_port = ProtoField.uint16("hep.src_port", "Source port"),
    dst_port = ProtoField.uint16("hep.dst_port", "Destination port"),
    ts_sec = ProtoField.uint32("hep.ts_sec", "Timestamp (s)"),
    ts_usec = ProtoField.uint32("hep.ts_usec", "Timestamp (us)"),
    proto_type = ProtoField.uint8("hep.proto_type", "Protocol type", base.HEX),
    capture_id = ProtoField.uint32("hep.capture_id", "Capture agent id"),
    auth_key = ProtoField.string("hep.auth_key", "Authentication key"),
    payload = ProtoField.bytes("hep.payload", "Payload"),
    correlation_id = ProtoField.string("hep.correlation_id", "Correlation id"),
    node_name = ProtoField.string("hep.node_name", "Node name"),
    chunk = ProtoField.bytes("hep.chunk", "Other chunk"),
}
hep.fields = { f.family, f.ip_proto, f.src_ip, f.dst_ip, f.src_ip6, f.dst_ip6, f.src_port,
    f.dst_port, f.ts_sec, f.ts_usec, f.proto_type, f.capture_id, f.auth_key, f.payload,
    f.correlation_id, f.node_name, f.chunk }

-- Generic chunk types (vendor 0) and their fields.
local by_type = {
    [0x01] = f.family, [0x02] = f.ip_proto, [0x03] = f.src_ip, [0x04] = f.dst_ip,
    [0x05] = f.src_ip6, [0x06] = f.dst_ip6, [0x07] = f.src_port, [0x08] = f.dst_port,
    [0x09] = f.ts_sec, [0x0a] = f.ts_usec, [0x0b] = f.proto_type, [0x0c] = f.capture_id,
    [0x0e] = f.auth_key, [0x0f] = f.payload, [0x11] = f.correlation_id, [0x13] = f.node_name,
}

local inner = { [0x01] = "sip", [0x38] = "diameter" }

function hep.dissector(tvb, pinfo, tree)
    if tvb:len() < 6 or tvb(0, 4):string() ~= "HEP3" then
        return 0
    end
    local total = tvb(4, 2):uint()
    if total > tvb:len() then
        return 0
    end
    pinfo.cols.protocol = "HEP3"
    local t = tree:add(hep, tvb(0, total))
    local off, ptype, payload, node = 6, nil, nil, nil
    while off + 6 <= total do
        local vendor = tvb(off, 2):uint()
        local kind = tvb(off + 2, 2):uint()
        local len = tvb(off + 4, 2):uint()
        if len < 6 or off + len > total then
            t:add_expert_info(PI_MALFORMED, PI_ERROR, "bad HEP chunk length")
            break
        end
        if len > 6 then
            local v = tvb(off + 6, len - 6)
            local field = vendor == 0 and by_type[kind] or f.chunk
            t:add(field, v)
            if vendor == 0 and kind == 0x0b then
                ptype = v:uint()
            elseif vendor == 0 and kind == 0x0f then
                payload = v
            elseif vendor == 0 and kind == 0x13 then
                node = v:string()
            end
        end
        off = off + len
    end
    local name = ptype and inner[ptype]
    if payload and name then
        Dissector.get(name):call(payload:tvb(), pinfo, tree)
    end
    if node then
        pinfo.cols.info:prepend("[" .. node .. "] ")
    end
    return total
end

DissectorTable.get("udp.port"):add(9060, hep)
