#!/usr/bin/env bash
# Regenerates the conformance captures with ffmpeg.
#
#   record.sh flv     FLV files and their ffprobe packet lists (needs ffmpeg, ffprobe)
#   record.sh rtmp    rtmp_publish.bin: the client->server bytes of an ffmpeg RTMP publish of
#                     h264_aac.flv (needs python3 and a server binary in $MEDIAKIT_BIN)
#   record.sh rtsp    rtsp_publish.bin: the same for an ffmpeg RTSP publish (TCP interleaved)
#   record.sh [all]   all three
#
# Outputs (in this directory):
#   h264_aac.flv, video_only.flv, audio_only.flv     ~2 s each, H.264 320x240 25 fps with
#       B-frames and a keyframe every 25 frames, AAC-LC 44.1 kHz stereo; each under 150 KB.
#   NAME.packets.json     ffprobe's packets (codec_type, stream_index, pts, dts, size, pos,
#       flags) and streams (codec, profile, size, sample rate, channels, time base,
#       extradata_size) of NAME.flv, time base 1/1000 (milliseconds).
#   rtmp_publish.bin      every byte ffmpeg sent to the server while publishing h264_aac.flv
#       with `-c copy` (handshake C0 C1 C2, then the chunk stream: connect, releaseStream,
#       FCPublish, createStream, publish, @setDataFrame, media, FCUnpublish, deleteStream);
#       its media are the packets of h264_aac.packets.json.
#   rtmp_publish.s2c.bin  what the server answered on the same connection (for reference).
#   rtsp_publish.bin      every byte ffmpeg sent while publishing h264_aac.flv with `-c copy -f
#       rtsp -rtsp_transport tcp` (OPTIONS, ANNOUNCE with the SDP, SETUP per track, RECORD,
#       then RTP and RTCP interleaved, TEARDOWN); rtsp_publish.s2c.bin the server's answers,
#       whose Session header names the session id the requests repeat.
#
# The encodes are not bit-for-bit reproducible across ffmpeg/x264 versions; tests compare each
# capture with its own packet list, recorded here from the same file.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
what="${1:-all}"

need() { command -v "$1" >/dev/null || { echo "record.sh: $1 is required (Debian: apt-get install ${2:-$1})" >&2; exit 1; }; }
need ffmpeg
need ffprobe ffmpeg

encode() { # NAME: video and/or audio inputs and codecs chosen by name
    local name="$1" inputs=() codecs=()
    if [[ "$name" != audio_only ]]; then
        inputs+=(-f lavfi -i testsrc2=size=320x240:rate=25)
        # ultrafast turns B-frames off; bframes=2 turns them back on (so pts != dts).
        codecs+=(-c:v libx264 -preset ultrafast -x264-params bframes=2:keyint=25:min-keyint=25:scenecut=0
                 -b:v 250k -maxrate 250k -bufsize 250k -pix_fmt yuv420p)
    fi
    if [[ "$name" != video_only ]]; then
        inputs+=(-f lavfi -i sine=frequency=440:sample_rate=44100)
        codecs+=(-c:a aac -ar 44100 -ac 2 -b:a 64k)
    fi
    ffmpeg -nostdin -hide_banner -v error -y "${inputs[@]}" -t 2 "${codecs[@]}" \
        -fflags +bitexact -f flv "$here/$name.flv"
    ffprobe -v error \
        -show_entries packet=codec_type,stream_index,pts,dts,size,pos,flags \
        -show_entries stream=index,codec_type,codec_name,profile,width,height,pix_fmt,sample_rate,channels,time_base,extradata_size \
        -of json "$here/$name.flv" > "$here/$name.packets.json"
    local bytes
    bytes=$(stat -c %s "$here/$name.flv")
    if (( bytes > 150000 )); then echo "record.sh: $name.flv is $bytes bytes, over 150 KB" >&2; exit 1; fi
    echo "$name.flv: $bytes bytes, $(grep -c '"codec_type"' "$here/$name.packets.json") entries in $name.packets.json"
}

record_flv() {
    encode h264_aac
    encode video_only
    encode audio_only
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_port() { # PORT PID: until something listens on PORT, or fail after 10 s or if PID died
    local i
    for i in $(seq 1 200); do
        if python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2).close()' "$1" 2>/dev/null; then
            return 0
        fi
        kill -0 "$2" 2>/dev/null || { echo "record.sh: process $2 exited before listening on $1" >&2; return 1; }
        sleep 0.05
    done
    echo "record.sh: nothing listens on port $1 after 10 s" >&2
    return 1
}

record_publish() { # rtmp | rtsp
    local proto="$1"
    need python3
    [[ -n "${MEDIAKIT_BIN:-}" && -x "${MEDIAKIT_BIN}" ]] || {
        echo "record.sh: set MEDIAKIT_BIN to the server binary (e.g. target/release/mediakit)" >&2; exit 1; }
    [[ -f "$here/h264_aac.flv" ]] || encode h264_aac

    local rtmp_port http_port rtsp_port proxy_port status=0 port url output
    # Globals, not locals: the EXIT trap runs after this function has returned.
    tmp="$(mktemp -d)"
    rtmp_port=$(free_port); http_port=$(free_port); rtsp_port=$(free_port)
    "$MEDIAKIT_BIN" --bind 127.0.0.1 --workers 1 --rtmp-port "$rtmp_port" --http-port "$http_port" \
        --rtsp-port "$rtsp_port" > "$tmp/server.log" 2>&1 &
    server_pid=$!
    # Stop only what this script started, by PID, whatever happens below.
    trap 'kill "${server_pid:-}" 2>/dev/null || true; kill "${proxy_pid:-}" 2>/dev/null || true; rm -rf "${tmp:-/nonexistent}"' EXIT
    if [[ "$proto" == rtmp ]]; then
        port=$rtmp_port; output=(-f flv)
    else
        port=$rtsp_port; output=(-f rtsp -rtsp_transport tcp)
    fi
    wait_port "$port" "$server_pid" || { cat "$tmp/server.log" >&2; exit 1; }

    # A one-connection TCP proxy: binds an ephemeral port, writes it to a file once listening,
    # forwards both ways and records each direction to its own file.
    cat > "$tmp/proxy.py" <<'PY'
import socket, sys, threading
server_port, port_path, c2s_path, s2c_path = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(1)
with open(port_path + ".tmp", "w") as f:
    f.write(str(listener.getsockname()[1]))
import os
os.rename(port_path + ".tmp", port_path)
listener.settimeout(30)
client, _ = listener.accept()
server = socket.create_connection(("127.0.0.1", server_port), 10)
server.settimeout(30)
client.settimeout(30)

def pump(src, dst, path):
    with open(path, "wb") as out:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            out.write(data)
            try:
                dst.sendall(data)
            except OSError:
                break
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass

threads = [threading.Thread(target=pump, args=(client, server, c2s_path)),
           threading.Thread(target=pump, args=(server, client, s2c_path))]
for t in threads:
    t.start()
for t in threads:
    t.join()
PY
    python3 "$tmp/proxy.py" "$port" "$tmp/proxy.port" "$tmp/c2s.bin" "$tmp/s2c.bin" &
    proxy_pid=$!
    local i
    for i in $(seq 1 100); do [[ -f "$tmp/proxy.port" ]] && break; sleep 0.05; done
    [[ -f "$tmp/proxy.port" ]] || { echo "record.sh: the proxy did not start" >&2; exit 1; }
    proxy_port=$(cat "$tmp/proxy.port")

    # `timeout` bounds ffmpeg (it signals its own child by PID).
    url="$proto://127.0.0.1:$proxy_port/live/capture"
    timeout 60 ffmpeg -nostdin -hide_banner -v error -i "$here/h264_aac.flv" -c copy "${output[@]}" \
        "$url" || status=$?
    # The proxy ends when both directions have closed; give it 10 s.
    for i in $(seq 1 200); do kill -0 "$proxy_pid" 2>/dev/null || break; sleep 0.05; done
    if kill -0 "$proxy_pid" 2>/dev/null; then
        echo "record.sh: the proxy did not finish; stopping it" >&2
        kill "$proxy_pid" 2>/dev/null || true
    fi
    wait "$proxy_pid" 2>/dev/null || true
    if (( status != 0 )); then
        echo "record.sh: the ffmpeg publish failed (exit $status); server log:" >&2
        cat "$tmp/server.log" >&2
        exit 1
    fi
    cp "$tmp/c2s.bin" "$here/${proto}_publish.bin"
    cp "$tmp/s2c.bin" "$here/${proto}_publish.s2c.bin"
    echo "${proto}_publish.bin: $(stat -c %s "$here/${proto}_publish.bin") bytes; ${proto}_publish.s2c.bin: $(stat -c %s "$here/${proto}_publish.s2c.bin") bytes"
}

case "$what" in
    flv) record_flv ;;
    rtmp|rtsp) record_publish "$what" ;;
    all) record_flv; record_publish rtmp; record_publish rtsp ;;
    *) echo "usage: $0 [flv|rtmp|rtsp|all]" >&2; exit 2 ;;
esac
