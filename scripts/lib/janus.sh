# Janus 1.1.2 (Debian's `janus`) as the peer SFU of the side-by-side bench: a private config
# with only the VideoRoom plugin and the HTTP transport on 127.0.0.1:8088, no session
# timeout (the bench keeps sessions for its whole run), RTP ports 20000-40000.
#
# Janus skips loopback interfaces when it gathers ICE candidates, so it runs in a private
# network namespace where 127.0.0.1 also sits on an `ifb` device (see scripts/side-by-side.sh).

JANUS_LIB="${JANUS_LIB:-/usr/lib/x86_64-linux-gnu/janus}"

# janus_config DIR: writes the three config files Janus reads into DIR.
janus_config() {
  local dir="$1"
  mkdir -p "$dir"
  cat > "$dir/janus.jcfg" <<JCFG
general: {
	configs_folder = "$dir"
	plugins_folder = "$JANUS_LIB/plugins"
	transports_folder = "$JANUS_LIB/transports"
	events_folder = "$JANUS_LIB/events"
	loggers_folder = "$JANUS_LIB/loggers"
	debug_level = 2
	session_timeout = 0
}
media: {
	rtp_port_range = "20000-40000"
}
nat: {
	ice_enforce_list = "127.0.0.1"
}
plugins: {
	disable = "libjanus_audiobridge.so,libjanus_duktape.so,libjanus_echotest.so,libjanus_lua.so,libjanus_nosip.so,libjanus_recordplay.so,libjanus_sip.so,libjanus_streaming.so,libjanus_textroom.so,libjanus_videocall.so,libjanus_voicemail.so"
}
transports: {
	disable = "libjanus_websockets.so,libjanus_mqtt.so,libjanus_nanomsg.so,libjanus_pfunix.so,libjanus_rabbitmq.so"
}
loggers: {
	disable = "libjanus_jsonlog.so"
}
events: {
	broadcast = false
}
JCFG
  cat > "$dir/janus.transport.http.jcfg" <<JCFG
general: {
	json = "plain"
	base_path = "/janus"
	http = true
	ip = "127.0.0.1"
	port = 8088
	https = false
}
admin: {
	admin_http = false
}
JCFG
  cat > "$dir/janus.plugin.videoroom.jcfg" <<JCFG
general: {
}
JCFG
}
