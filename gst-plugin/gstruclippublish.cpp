/**
 * SECTION:element-ruclippublish
 * @title: ruclippublish
 *
 * Publishes what ruclipfilter finds as JSON documents, one per analysis and
 * one per segment event, to a file (JSON lines) or an MQTT broker. The stream
 * passes through untouched (any caps); the element only reads the RuClipMeta
 * of each buffer (see ruclipmeta.h) and the "ruclip-segment" events.
 *
 * |[
 * gst-launch-1.0 videotestsrc ! ruclipfilter model=models/ruclip-shapes-ru labels="красный фон;синий фон" \
 *   interval=15 ! ruclippublish method=file location=labels.jsonl ! fakesink
 * gst-launch-1.0 v4l2src ! videoconvert ! ruclipfilter model=/models/m labels="человек;пусто" mode=async ! \
 *   ruclippublish method=mqtt address=broker.local:1883 stream-id=cam1 qos=1 ! fakesink
 * ]| (the second publishes to the topic ruclip/cam1)
 *
 * One document per analysis: a result rides on many buffers (in async mode on
 * later ones), so a document is made when the meta's frame differs from the
 * last one published (forgotten on FLUSH_STOP and STREAM_START). One per
 * serialized custom downstream event whose structure is named
 * "ruclip-segment" (fields: event "start"|"end", label, start-pts, end-pts,
 * start-running-time, end-running-time, mean-score, peak-score, frames,
 * model); the event goes on downstream unchanged.
 *
 * The documents (UTF-8 JSON, one line each; numbers of seconds are doubles):
 *
 *   common to both types:
 *     "type"          "analysis" | "segment"
 *     "stream"        the stream-id property; else the STREAM_START event's stream id; else the element name
 *     "pts"           seconds: an analysis, its frame's PTS; a segment, start-pts ("start") or end-pts ("end");
 *                     null when unknown
 *     "running_time"  seconds, running time of that PTS (a segment: start-/end-running-time); null when unknown
 *     "wall_time"     UTC when the document was made, ISO 8601 with milliseconds: "2026-12-01T20:30:00.123Z"
 *     "model"         the model folder
 *   "analysis":
 *     "frame"         index of the analyzed frame since the stream started
 *     "labels"        [{"label": "красный фон", "score": 0.98, "cosine": 0.31}, ...] best first (score: the
 *                     probability; after ruclipfilter's top-k and threshold)
 *   "segment":
 *     "event"         "start" | "end"
 *     "label"         the label whose segment starts or ends
 *     "start"         seconds, start-pts
 *     "end"           seconds, end-pts; null on "start"
 *     "mean_score", "peak_score"  the label's mean and highest score over the segment so far
 *     "frames"        analyses in the segment so far
 *
 *   {"type":"analysis","stream":"cam1","pts":0.1,"running_time":0.1,"wall_time":"2026-12-01T20:30:00.123Z",
 *    "frame":3,"labels":[{"label":"красный фон","score":0.999,"cosine":0.41},{"label":"синий фон",
 *    "score":0.001,"cosine":0.02}],"model":"models/ruclip-shapes-ru"}
 *   {"type":"segment","stream":"cam1","pts":2.0,"running_time":2.0,"wall_time":"2026-12-01T20:30:02.001Z",
 *    "event":"end","label":"красный фон","start":0.0,"end":2.0,"mean_score":0.97,"peak_score":0.999,
 *    "frames":20,"model":"models/ruclip-shapes-ru"}
 *
 * method=file appends the lines to 'location' ("-": standard output) and
 * flushes each. method=mqtt publishes each document as one message to
 * 'topic' (default ruclip/<stream>) through libmosquitto. A thread of the
 * element's own owns the connection; the streaming thread only appends to a
 * bounded queue (max-queue documents; past it the oldest is dropped and
 * counted in documents-dropped), so a slow or absent broker never holds up
 * the stream. With qos=1 a document stays queued until the broker's PUBACK
 * and is sent again on the next connection if the connection drops first (at
 * least once: a subscriber may see a document twice, told apart by "stream"
 * and "frame"). The thread reconnects with exponential backoff (0.1 s doubling
 * to 5 s). A broker that can't be reached is a warning, not an error: the
 * stream goes on and documents queue. EOS waits up to flush-timeout for the
 * queue to drain.
 */
#include "gstruclippublish.h"

#include <glib-unix.h>
#include <glib/gstdio.h>
#include <mosquitto.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "gstruclipfilter.h"  // gst_ruclip_meta_register
#include "ruclipmeta.h"

GST_DEBUG_CATEGORY_STATIC (gst_ruclip_publish_debug);
#define GST_CAT_DEFAULT gst_ruclip_publish_debug

typedef enum {
  RUCLIP_PUBLISH_FILE,
  RUCLIP_PUBLISH_MQTT,
} RuClipPublishMethod;

#define GST_TYPE_RUCLIP_PUBLISH_METHOD (ruclip_publish_method_get_type ())
static GType
ruclip_publish_method_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {RUCLIP_PUBLISH_FILE, "Append JSON lines to the file 'location' (\"-\": standard output)", "file"},
    {RUCLIP_PUBLISH_MQTT, "Publish each document as an MQTT message to 'topic' at 'address'", "mqtt"},
    {0, NULL, NULL},
  };
  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstRuClipPublishMethod", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

enum {
  PROP_0,
  PROP_METHOD,
  PROP_LOCATION,
  PROP_STREAM_ID,
  PROP_ADDRESS,
  PROP_TOPIC,
  PROP_QOS,
  PROP_CLIENT_ID,
  PROP_USERNAME,
  PROP_PASSWORD,
  PROP_TLS_CA_FILE,
  PROP_TLS_CERT_FILE,
  PROP_TLS_KEY_FILE,
  PROP_MAX_QUEUE,
  PROP_FLUSH_TIMEOUT,
  PROP_DOCUMENTS_PUBLISHED,
  PROP_DOCUMENTS_DROPPED,
  PROP_CONNECTED,
};

#define DEFAULT_METHOD RUCLIP_PUBLISH_FILE
#define DEFAULT_LOCATION "-"
#define DEFAULT_ADDRESS "127.0.0.1:1883"
#define DEFAULT_QOS 1
#define DEFAULT_MAX_QUEUE 1000
#define DEFAULT_FLUSH_TIMEOUT (5 * GST_SECOND)
#define MQTT_DEFAULT_PORT 1883

namespace {

using Clock = std::chrono::steady_clock;
using ordered_json = nlohmann::ordered_json;

// Reconnecting: the first retry after kBackoffMin, doubling up to kBackoffMax.
constexpr auto kBackoffMin = std::chrono::milliseconds (100);
constexpr auto kBackoffMax = std::chrono::milliseconds (5000);
// A connection attempt with no CONNACK after this is given up and retried.
constexpr auto kConnectTimeout = std::chrono::seconds (10);
constexpr int kKeepaliveSeconds = 30;
// QoS 1 documents handed to libmosquitto at once, awaiting their PUBACK
// (libmosquitto's own default in-flight limit).
constexpr size_t kInFlightWindow = 20;

// Properties, read at start() (under settings_lock).
struct Settings {
  RuClipPublishMethod method = DEFAULT_METHOD;
  std::string location = DEFAULT_LOCATION;
  std::string stream_id;
  std::string address = DEFAULT_ADDRESS;
  std::string topic;
  guint qos = DEFAULT_QOS;
  std::string client_id;
  std::string username;
  std::string password;
  std::string tls_ca_file;
  std::string tls_cert_file;
  std::string tls_key_file;
  guint max_queue = DEFAULT_MAX_QUEUE;
  guint64 flush_timeout = DEFAULT_FLUSH_TIMEOUT;
};

// What a connection needs, checked at start(): the properties (client_id
// filled in when generated) and the address parsed.
struct MqttConfig {
  Settings s;
  std::string host;
  int port = MQTT_DEFAULT_PORT;
};

ordered_json
seconds_or_null (guint64 t)
{
  return GST_CLOCK_TIME_IS_VALID (t) ? ordered_json (t / 1e9) : ordered_json (nullptr);
}

// UTC now as "2026-12-01T20:30:00.123Z".
std::string
wall_time_now ()
{
  const gint64 us = g_get_real_time ();
  GDateTime *t = g_date_time_new_from_unix_utc (us / G_USEC_PER_SEC);
  gchar *s = g_date_time_format (t, "%Y-%m-%dT%H:%M:%S");
  gchar *full = g_strdup_printf ("%s.%03dZ", s, (int) (us % G_USEC_PER_SEC / 1000));
  std::string out (full);
  g_free (full);
  g_free (s);
  g_date_time_unref (t);
  return out;
}

ordered_json
document_head (const char *type, const std::string & stream, guint64 pts, guint64 running_time)
{
  ordered_json doc;
  doc["type"] = type;
  doc["stream"] = stream;
  doc["pts"] = seconds_or_null (pts);
  doc["running_time"] = seconds_or_null (running_time);
  doc["wall_time"] = wall_time_now ();
  return doc;
}

std::string
dump (const ordered_json & doc)
{
  // Labels stay UTF-8 as they are (not \u-escaped); bytes that aren't UTF-8
  // become U+FFFD rather than breaking the document.
  return doc.dump (-1, ' ', false, ordered_json::error_handler_t::replace);
}

std::string
structure_string (const GstStructure * s, const char *field)
{
  const gchar *v = gst_structure_get_string (s, field);
  return v ? v : "";
}

guint64
structure_uint64 (const GstStructure * s, const char *field, guint64 fallback)
{
  guint64 v = fallback;
  gst_structure_get_uint64 (s, field, &v);
  return v;
}

gdouble
structure_double (const GstStructure * s, const char *field)
{
  gdouble v = 0.0;
  gst_structure_get_double (s, field, &v);
  return v;
}

// One RuClipMeta result (ruclipmeta.h) as an "analysis" document.
std::string
analysis_document (const std::string & stream, const GstStructure * r, const GstSegment * segment)
{
  const GstClockTime pts = ruclip_result_source_pts (r);
  const GstClockTime running_time = GST_CLOCK_TIME_IS_VALID (pts) && segment->format == GST_FORMAT_TIME ?
      gst_segment_to_running_time (segment, GST_FORMAT_TIME, pts) : GST_CLOCK_TIME_NONE;
  ordered_json doc = document_head ("analysis", stream, pts, running_time);
  doc["frame"] = structure_uint64 (r, "frame", 0);
  ordered_json labels = ordered_json::array ();
  for (guint i = 0; i < ruclip_result_n_labels (r); ++i) {
    const gchar *label = ruclip_result_label (r, i);
    labels.push_back ({{"label", label ? label : ""}, {"score", ruclip_result_score (r, i)},
            {"cosine", ruclip_result_cosine (r, i)}});
  }
  doc["labels"] = std::move (labels);
  doc["model"] = structure_string (r, "model");
  return dump (doc);
}

// A "ruclip-segment" event's structure as a "segment" document; empty when
// its "event" is neither "start" nor "end".
std::string
segment_document (const std::string & stream, const GstStructure * s)
{
  const std::string event = structure_string (s, "event");
  if (event != "start" && event != "end")
    return "";
  const bool start = event == "start";
  const guint64 start_pts = structure_uint64 (s, "start-pts", GST_CLOCK_TIME_NONE);
  const guint64 end_pts = start ? GST_CLOCK_TIME_NONE : structure_uint64 (s, "end-pts", GST_CLOCK_TIME_NONE);
  const guint64 running_time = structure_uint64 (s, start ? "start-running-time" : "end-running-time",
      GST_CLOCK_TIME_NONE);
  ordered_json doc = document_head ("segment", stream, start ? start_pts : end_pts, running_time);
  doc["event"] = event;
  doc["label"] = structure_string (s, "label");
  doc["start"] = seconds_or_null (start_pts);
  doc["end"] = seconds_or_null (end_pts);
  doc["mean_score"] = structure_double (s, "mean-score");
  doc["peak_score"] = structure_double (s, "peak-score");
  doc["frames"] = structure_uint64 (s, "frames", 0);
  doc["model"] = structure_string (s, "model");
  return dump (doc);
}

// "host:port", "host" (port 1883) or "[v6 address]:port". False, and why, when
// it isn't one of these.
bool
parse_address (const std::string & address, std::string *host, int *port, std::string *why)
{
  std::string port_text;
  if (!address.empty () && address[0] == '[') {
    const size_t close = address.find (']');
    if (close == std::string::npos) {
      *why = "no ']' after the IPv6 address";
      return false;
    }
    *host = address.substr (1, close - 1);
    if (close + 1 < address.size ()) {
      if (address[close + 1] != ':') {
        *why = "expected ':' after ']'";
        return false;
      }
      port_text = address.substr (close + 2);
      if (port_text.empty ()) {
        *why = "no port after ':'";
        return false;
      }
    }
  } else {
    const size_t colon = address.rfind (':');
    *host = address.substr (0, colon);
    if (colon != std::string::npos) {
      port_text = address.substr (colon + 1);
      if (port_text.empty ()) {
        *why = "no port after ':'";
        return false;
      }
      if (host->find (':') != std::string::npos) {
        *why = "an IPv6 address goes in brackets: [::1]:1883";
        return false;
      }
    }
  }
  if (host->empty ()) {
    *why = "no host";
    return false;
  }
  *port = MQTT_DEFAULT_PORT;
  if (!port_text.empty ()) {
    guint64 value = 0;
    if (!g_ascii_string_to_unsigned (port_text.c_str (), 10, 1, 65535, &value, NULL)) {
      *why = "the port '" + port_text + "' is not a number from 1 to 65535";
      return false;
    }
    *port = (int) value;
  }
  return true;
}

// A publish topic MQTT accepts (no wildcards, valid UTF-8, not too long); else why not.
bool
valid_topic (const std::string & topic, std::string *why)
{
  if (topic.empty ()) {
    *why = "it is empty";
    return false;
  }
  if (mosquitto_validate_utf8 (topic.c_str (), (int) topic.size ()) != MOSQ_ERR_SUCCESS) {
    *why = "it is not valid UTF-8";
    return false;
  }
  if (mosquitto_pub_topic_check (topic.c_str ()) != MOSQ_ERR_SUCCESS) {
    *why = "a topic to publish to may not contain the wildcards '+' and '#' (and is at most 65535 bytes)";
    return false;
  }
  return true;
}

// The topic for a stream when 'topic' isn't set: ruclip/<stream>, wildcards replaced.
std::string
default_topic (const std::string & stream, const std::string & element_name)
{
  std::string topic = "ruclip/" + stream;
  for (char &c : topic)
    if (c == '+' || c == '#')
      c = '_';
  std::string why;
  return valid_topic (topic, &why) ? topic : "ruclip/" + element_name;
}

std::string
mosquitto_error (int rc)
{
  return rc == MOSQ_ERR_ERRNO ? g_strerror (errno) : mosquitto_strerror (rc);
}

// Credentials and TLS on a client object; false and why if libmosquitto refuses them.
bool
configure_client (struct mosquitto *mosq, const MqttConfig & c, std::string *why)
{
  if (!c.s.username.empty ()) {
    const int rc = mosquitto_username_pw_set (mosq, c.s.username.c_str (),
        c.s.password.empty ()? NULL : c.s.password.c_str ());
    if (rc != MOSQ_ERR_SUCCESS) {
      *why = "username/password: " + mosquitto_error (rc);
      return false;
    }
  }
  if (!c.s.tls_ca_file.empty ()) {
    // An encrypted key gets no password rather than a prompt on the terminal.
    auto no_password =[](char *, int, int, void *) -> int { return 0; };
    const int rc = mosquitto_tls_set (mosq, c.s.tls_ca_file.c_str (), NULL,
        c.s.tls_cert_file.empty ()? NULL : c.s.tls_cert_file.c_str (),
        c.s.tls_key_file.empty ()? NULL : c.s.tls_key_file.c_str (), no_password);
    if (rc != MOSQ_ERR_SUCCESS) {
      *why = "TLS (tls-ca-file '" + c.s.tls_ca_file + "', tls-cert-file '" + c.s.tls_cert_file + "', tls-key-file '" +
          c.s.tls_key_file + "'): " + mosquitto_error (rc) + " (are the files there and readable?)";
      return false;
    }
  }
  return true;
}

}  // namespace

// The MQTT side: a bounded queue the streaming thread appends to, and a
// thread of its own that owns the broker connection. Each connection is a
// fresh libmosquitto client driven by this thread (poll() on its socket and a
// wake-up pipe, then mosquitto_loop() without waiting), so documents not yet
// acknowledged are exactly those left in the queue: after a reconnect they
// are all sent again, oldest first.
class MqttPublisher {
public:
  MqttPublisher (GstRuClipPublish * element, MqttConfig config) : element_ (element), config_ (std::move (config)) {}
  ~MqttPublisher () { stop (); }

  bool start (std::string *why);
  void stop ();

  // Streaming thread: queue a document; never blocks on the network.
  void push (const std::string & topic, std::string payload);
  // Waits until every queued document is delivered, `timeout` nanoseconds
  // pass (GST_CLOCK_TIME_NONE: no limit) or a flush begins; returns how many
  // are left.
  size_t wait_delivered (guint64 timeout);
  void set_flushing (bool flushing);

  guint64 published () const { return published_; }
  guint64 dropped () const { return dropped_; }
  bool connected () const { return connected_; }

private:
  struct Document {
    guint64 seq;
    std::string topic;
    std::string payload;
    int mid;  // -1: not sent on the current connection
  };

  void run ();
  bool connect_once (std::string *why);
  int step (short revents);
  void connection_ended (const std::string & why);
  void send_queued ();
  void take_acks ();
  void wake ();

  static void on_connect (struct mosquitto *, void *self, int rc);
  static void on_disconnect (struct mosquitto *, void *self, int rc);
  static void on_publish (struct mosquitto *, void *self, int mid);
  static void on_log (struct mosquitto *, void *self, int level, const char *line);

  GstRuClipPublish *element_;
  const MqttConfig config_;

  // The queue, shared with the streaming thread: documents [0, in_flight_)
  // were sent on the current connection (qos 1) and await their PUBACK.
  std::mutex lock_;
  std::condition_variable changed_;
  std::deque<Document> queue_;
  size_t in_flight_ = 0;
  guint64 next_seq_ = 0;
  bool flushing_ = false;

  std::atomic<guint64> published_{0}, dropped_{0};
  std::atomic<bool> connected_{false};
  std::atomic<bool> quit_{false};
  std::thread thread_;
  int wake_fds_[2] = {-1, -1};

  // The network thread's own.
  struct mosquitto *mosq_ = nullptr;
  bool connack_ = false;  // this connection is accepted
  bool refused_ = false;  // the broker answered the attempt with a refusal (credentials, client id, ...)
  Clock::time_point attempt_started_;
  std::string last_error_;  // why the last attempt or connection failed
  std::vector<int> acked_;  // mids libmosquitto reported published
  bool outage_reported_ = false;
};

bool
MqttPublisher::start (std::string *why)
{
  GError *error = NULL;
  if (!g_unix_open_pipe (wake_fds_, FD_CLOEXEC, &error) || !g_unix_set_fd_nonblocking (wake_fds_[0], TRUE, &error) ||
      !g_unix_set_fd_nonblocking (wake_fds_[1], TRUE, &error)) {
    *why = std::string ("wake-up pipe: ") + (error ? error->message : "?");
    g_clear_error (&error);
    return false;
  }
  thread_ = std::thread ([this] { run (); });
  return true;
}

void
MqttPublisher::stop ()
{
  if (thread_.joinable ()) {
    quit_ = true;
    wake ();
    thread_.join ();
  }
  for (int &fd : wake_fds_) {
    if (fd >= 0)
      close (fd);
    fd = -1;
  }
}

void
MqttPublisher::wake ()
{
  const char byte = 1;
  if (write (wake_fds_[1], &byte, 1) < 0 && errno != EAGAIN)
    GST_WARNING_OBJECT (element_, "wake-up pipe: %s", g_strerror (errno));
}

void
MqttPublisher::push (const std::string & topic, std::string payload)
{
  guint64 dropped_now = 0;
  size_t queued;
  {
    std::lock_guard<std::mutex> guard (lock_);
    while (queue_.size () >= config_.s.max_queue) {
      // The oldest goes, even if it was sent and awaits its PUBACK: if that
      // comes it is simply not counted.
      if (in_flight_ > 0)
        in_flight_--;
      queue_.pop_front ();
      dropped_now++;
    }
    queue_.push_back (Document{next_seq_++, topic, std::move (payload), -1});
    queued = queue_.size ();
  }
  if (dropped_now) {
    dropped_ += dropped_now;
    GST_DEBUG_OBJECT (element_, "queue full (max-queue %u): dropped the oldest document, %" G_GUINT64_FORMAT
        " dropped so far", config_.s.max_queue, (guint64) dropped_);
  }
  GST_LOG_OBJECT (element_, "queued a document for %s, %zu waiting", topic.c_str (), queued);
  wake ();
}

size_t
MqttPublisher::wait_delivered (guint64 timeout)
{
  std::unique_lock<std::mutex> guard (lock_);
  auto done = [this] { return queue_.empty () || flushing_; };
  if (timeout == GST_CLOCK_TIME_NONE)
    changed_.wait (guard, done);
  else  // at most ~146 years: steady_clock's nanoseconds are signed 64-bit
    changed_.wait_for (guard, std::chrono::nanoseconds (std::min<guint64> (timeout, G_MAXINT64 / 2)), done);
  return queue_.size ();
}

void
MqttPublisher::set_flushing (bool flushing)
{
  {
    std::lock_guard<std::mutex> guard (lock_);
    flushing_ = flushing;
  }
  changed_.notify_all ();
}

void
MqttPublisher::on_connect (struct mosquitto *, void *self, int rc)
{
  auto *p = static_cast<MqttPublisher *> (self);
  if (rc == 0) {
    p->connack_ = true;
  } else {
    p->refused_ = true;
    p->last_error_ = mosquitto_connack_string (rc);
  }
}

void
MqttPublisher::on_disconnect (struct mosquitto *, void *self, int rc)
{
  auto *p = static_cast<MqttPublisher *> (self);
  if (rc != 0 && p->last_error_.empty ())
    p->last_error_ = mosquitto_error (rc);
}

void
MqttPublisher::on_publish (struct mosquitto *, void *self, int mid)
{
  // Called from inside mosquitto_loop() or, for qos 0, mosquitto_publish():
  // only noted here, handled by take_acks().
  static_cast<MqttPublisher *> (self)->acked_.push_back (mid);
}

void
MqttPublisher::on_log (struct mosquitto *, void *self, int /*level */ , const char *line)
{
  GST_LOG_OBJECT (static_cast<MqttPublisher *> (self)->element_, "libmosquitto: %s", line);
}

bool
MqttPublisher::connect_once (std::string *why)
{
  mosq_ = mosquitto_new (config_.s.client_id.c_str (), true, this);
  if (!mosq_) {
    *why = std::string ("cannot create an MQTT client: ") + g_strerror (errno);
    return false;
  }
  mosquitto_connect_callback_set (mosq_, on_connect);
  mosquitto_disconnect_callback_set (mosq_, on_disconnect);
  mosquitto_publish_callback_set (mosq_, on_publish);
  mosquitto_log_callback_set (mosq_, on_log);
  connack_ = false;
  refused_ = false;
  last_error_.clear ();
  attempt_started_ = Clock::now ();
  int rc = MOSQ_ERR_SUCCESS;
  if (!configure_client (mosq_, config_, why))
    rc = MOSQ_ERR_INVAL;
  else if ((rc = mosquitto_connect_async (mosq_, config_.host.c_str (), config_.port,
              kKeepaliveSeconds)) != MOSQ_ERR_SUCCESS)
    *why = mosquitto_error (rc);
  if (rc != MOSQ_ERR_SUCCESS) {
    mosquitto_destroy (mosq_);
    mosq_ = nullptr;
    return false;
  }
  GST_DEBUG_OBJECT (element_, "connecting to %s (client id %s)", config_.s.address.c_str (),
      config_.s.client_id.c_str ());
  return true;
}

// The connection (or the attempt) is over: the documents it sent and that
// weren't acknowledged go again on the next one.
void
MqttPublisher::connection_ended (const std::string & why)
{
  const bool was_connected = connack_;
  if (mosq_) {
    mosquitto_destroy (mosq_);
    mosq_ = nullptr;
  }
  connack_ = false;
  connected_ = false;
  acked_.clear ();
  size_t unacknowledged, queued;
  {
    std::lock_guard<std::mutex> guard (lock_);
    for (size_t i = 0; i < in_flight_; ++i)
      queue_[i].mid = -1;
    unacknowledged = in_flight_;
    in_flight_ = 0;
    queued = queue_.size ();
  }
  GST_DEBUG_OBJECT (element_, "%s %s: %s; %zu sent document(s) unacknowledged, %zu queued",
      was_connected ? "lost the connection to" : "could not connect to", config_.s.address.c_str (), why.c_str (),
      unacknowledged, queued);
  if (outage_reported_)
    return;
  outage_reported_ = true;
  if (was_connected)
    GST_ELEMENT_WARNING (element_, RESOURCE, WRITE, ("Lost the connection to the MQTT broker at %s; reconnecting. "
            "Documents are queued meanwhile (at most %u)", config_.s.address.c_str (), config_.s.max_queue),
        ("%s", why.c_str ()));
  else if (refused_)
    GST_ELEMENT_WARNING (element_, RESOURCE, OPEN_WRITE, ("The MQTT broker at %s refused the connection (%s); it "
            "keeps trying. Documents are queued meanwhile (at most %u)", config_.s.address.c_str (), why.c_str (),
            config_.s.max_queue), ("client id %s, username '%s'", config_.s.client_id.c_str (),
            config_.s.username.c_str ()));
  else
    GST_ELEMENT_WARNING (element_, RESOURCE, OPEN_WRITE, ("The MQTT broker at %s isn't reachable; it keeps "
            "trying. Documents are queued meanwhile (at most %u)", config_.s.address.c_str (), config_.s.max_queue),
        ("%s", why.c_str ()));
}

// Acknowledged documents leave the queue.
void
MqttPublisher::take_acks ()
{
  if (acked_.empty ())
    return;
  guint64 done = 0;
  {
    std::lock_guard<std::mutex> guard (lock_);
    for (int mid : acked_) {
      if (config_.s.qos == 0) {
        done++;  // sent (it left the queue when handed over)
        continue;
      }
      for (size_t i = 0; i < in_flight_; ++i)
        if (queue_[i].mid == mid) {
          queue_.erase (queue_.begin () + i);
          in_flight_--;
          done++;
          break;
        }
    }
  }
  acked_.clear ();
  published_ += done;
  changed_.notify_all ();
  GST_LOG_OBJECT (element_, "%" G_GUINT64_FORMAT " document(s) %s, %" G_GUINT64_FORMAT " so far", done,
      config_.s.qos ? "acknowledged" : "sent", (guint64) published_);
}

// Hands queued documents to libmosquitto, oldest first, up to the in-flight window.
void
MqttPublisher::send_queued ()
{
  while (mosq_ && connack_) {
    guint64 seq;
    std::string topic, payload;
    {
      std::lock_guard<std::mutex> guard (lock_);
      if (in_flight_ >= queue_.size () || in_flight_ >= kInFlightWindow)
        return;
      const Document & d = queue_[in_flight_];
      seq = d.seq;
      topic = d.topic;
      payload = d.payload;
    }
    int mid = 0;
    const int rc = mosquitto_publish (mosq_, &mid, topic.c_str (), (int) payload.size (), payload.data (),
        (int) config_.s.qos, false);
    if (rc == MOSQ_ERR_PAYLOAD_SIZE || rc == MOSQ_ERR_OVERSIZE_PACKET || rc == MOSQ_ERR_MALFORMED_UTF8) {
      // Would never go: drop it rather than block the queue.
      GST_ELEMENT_WARNING (element_, RESOURCE, WRITE, ("A document could not be published to %s",
              topic.c_str ()), ("%s (%zu bytes)", mosquitto_strerror (rc), payload.size ()));
    } else if (rc != MOSQ_ERR_SUCCESS) {
      GST_DEBUG_OBJECT (element_, "publish: %s; trying again on the next connection", mosquitto_error (rc).c_str ());
      return;  // the connection is going: the loop finds out
    }
    std::lock_guard<std::mutex> guard (lock_);
    // The document is where it was unless push() dropped it meanwhile.
    if (in_flight_ < queue_.size () && queue_[in_flight_].seq == seq) {
      if (rc == MOSQ_ERR_SUCCESS && config_.s.qos > 0) {
        queue_[in_flight_].mid = mid;
        in_flight_++;
      } else {
        queue_.erase (queue_.begin () + in_flight_);
        changed_.notify_all ();
      }
    }
    if (rc == MOSQ_ERR_SUCCESS)
      GST_LOG_OBJECT (element_, "sent document %" G_GUINT64_FORMAT " to %s (mid %d)", seq, topic.c_str (), mid);
  }
}

// libmosquitto's reading, writing and keepalive for what poll() found.
int
MqttPublisher::step (short revents)
{
  // TLS: only mosquitto_loop() carries a non-blocking handshake on; it
  // select()s (without waiting), so it can't take descriptors past FD_SETSIZE.
  if (!config_.s.tls_ca_file.empty ())
    return mosquitto_loop (mosq_, 0, 1);
  int rc = MOSQ_ERR_SUCCESS;
  if (revents & (POLLIN | POLLERR | POLLHUP))
    rc = mosquitto_loop_read (mosq_, 1);
  if (rc == MOSQ_ERR_SUCCESS && (revents & POLLOUT) && mosquitto_socket (mosq_) >= 0)
    rc = mosquitto_loop_write (mosq_, 1);
  if (rc == MOSQ_ERR_SUCCESS && mosquitto_socket (mosq_) >= 0)
    rc = mosquitto_loop_misc (mosq_);
  return rc;
}

void
MqttPublisher::run ()
{
  GST_DEBUG_OBJECT (element_, "MQTT thread started for %s", config_.s.address.c_str ());
  auto backoff = kBackoffMin;
  Clock::time_point next_attempt = Clock::now ();
  while (!quit_) {
    Clock::time_point now = Clock::now ();
    if (!mosq_ && now >= next_attempt) {
      std::string why;
      if (!connect_once (&why)) {
        connection_ended (why);
        next_attempt = now + backoff;
        GST_DEBUG_OBJECT (element_, "next attempt in %ld ms", (long) backoff.count ());
        backoff = std::min (backoff * 2, kBackoffMax);
      }
    }

    // Sleep until the socket is ready, a document is queued, stop(), or the
    // next timer: a retry, the connect timeout, the keepalive housekeeping.
    auto wait = std::chrono::milliseconds (1000);
    if (!mosq_)
      wait = std::chrono::ceil<std::chrono::milliseconds> (next_attempt - now);
    else if (!connack_)
      wait = std::min (wait, std::chrono::ceil<std::chrono::milliseconds> (attempt_started_ + kConnectTimeout - now));
    struct pollfd fds[2] = {{wake_fds_[0], POLLIN, 0}, {-1, 0, 0}};
    fds[1].revents = 0;
    if (mosq_ && mosquitto_socket (mosq_) >= 0) {
      fds[1].fd = mosquitto_socket (mosq_);
      fds[1].events = (short) (POLLIN | (mosquitto_want_write (mosq_) ? POLLOUT : 0));
    }
    if (poll (fds, 2, (int) std::max<long> (0, wait.count ())) < 0 && errno != EINTR)
      GST_WARNING_OBJECT (element_, "poll: %s", g_strerror (errno));
    char drain[64];
    while (read (wake_fds_[0], drain, sizeof drain) > 0) {
    }
    if (quit_)
      break;
    if (!mosq_)
      continue;

    const bool was_accepted = connack_;
    const int rc = step (fds[1].revents);
    take_acks ();
    now = Clock::now ();
    if (rc != MOSQ_ERR_SUCCESS || mosquitto_socket (mosq_) < 0) {
      connection_ended (!last_error_.empty ()? last_error_ : mosquitto_error (rc));
      next_attempt = now + backoff;
      GST_DEBUG_OBJECT (element_, "next attempt in %ld ms", (long) backoff.count ());
      backoff = std::min (backoff * 2, kBackoffMax);
      continue;
    }
    if (!connack_ && now - attempt_started_ >= kConnectTimeout) {
      connection_ended ("no answer (CONNACK) in " + std::to_string (kConnectTimeout.count ()) + " s");
      next_attempt = now;
      continue;
    }
    if (connack_ && !was_accepted) {
      connected_ = true;
      backoff = kBackoffMin;
      size_t queued;
      {
        std::lock_guard<std::mutex> guard (lock_);
        queued = queue_.size ();
      }
      GST_INFO_OBJECT (element_, "connected to %s as %s, %zu document(s) to send", config_.s.address.c_str (),
          config_.s.client_id.c_str (), queued);
      if (outage_reported_)
        GST_ELEMENT_INFO (element_, RESOURCE, WRITE, ("Connected to the MQTT broker at %s again",
                config_.s.address.c_str ()), ("%zu document(s) queued", queued));
      outage_reported_ = false;
    }
    send_queued ();
    take_acks ();  // qos 0: counted as they are written
  }

  size_t left;
  {
    std::lock_guard<std::mutex> guard (lock_);
    left = queue_.size ();
  }
  if (mosq_) {
    if (connack_)
      mosquitto_disconnect (mosq_);
    mosquitto_destroy (mosq_);
    mosq_ = nullptr;
  }
  connected_ = false;
  if (left)
    GST_WARNING_OBJECT (element_, "MQTT thread stopped: %zu document(s) not delivered are lost (%" G_GUINT64_FORMAT
        " published, %" G_GUINT64_FORMAT " dropped)", left, (guint64) published_, (guint64) dropped_);
  else
    GST_DEBUG_OBJECT (element_, "MQTT thread stopped: %" G_GUINT64_FORMAT " published, %" G_GUINT64_FORMAT
        " dropped", (guint64) published_, (guint64) dropped_);
}

// Everything C++ the element owns; allocated in init, freed in finalize.
struct RuClipPublishState {
  std::mutex settings_lock;
  Settings settings;

  // Made by start(), used by the streaming thread until stop(); the
  // publisher, stopped, stays until the next start() for its counts.
  Settings active;
  FILE *file = nullptr;
  std::unique_ptr<MqttPublisher> mqtt;

  // Streaming-thread state.
  std::string stream;  // the "stream" of the documents
  std::string topic;   // mqtt: where they go
  bool have_frame = false;
  guint64 last_frame = 0;

  std::atomic<guint64> file_documents{0};
};

struct _GstRuClipPublish {
  GstBaseTransform parent;
  RuClipPublishState *state;
};

#define gst_ruclip_publish_parent_class parent_class
G_DEFINE_TYPE (GstRuClipPublish, gst_ruclip_publish, GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE_WITH_CODE (ruclippublish, "ruclippublish", GST_RANK_NONE, GST_TYPE_RUCLIP_PUBLISH,
    gst_ruclip_meta_register ());

static std::string
element_name (GstRuClipPublish * self)
{
  gchar *name = gst_element_get_name (GST_ELEMENT (self));
  std::string out (name ? name : "ruclippublish");
  g_free (name);
  return out;
}

// The stream the documents speak of is now `stream`; its topic follows unless 'topic' is set.
static void
set_stream (GstRuClipPublish * self, const std::string & stream)
{
  RuClipPublishState *st = self->state;
  st->stream = stream;
  st->topic = st->active.topic.empty ()? default_topic (stream, element_name (self)) : st->active.topic;
  const bool mqtt = st->active.method == RUCLIP_PUBLISH_MQTT;
  GST_DEBUG_OBJECT (self, "stream \"%s\"%s%s", stream.c_str (), mqtt ? ", topic " : "", mqtt ? st->topic.c_str () : "");
}

static gboolean
start_mqtt (GstRuClipPublish * self, const Settings & s)
{
  RuClipPublishState *st = self->state;
  MqttConfig c;
  std::string why;
  c.s = s;
  if (!parse_address (s.address, &c.host, &c.port, &why)) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("Invalid 'address' \"%s\": expected host:port, e.g. "
            "127.0.0.1:1883", s.address.c_str ()), ("%s", why.c_str ()));
    return FALSE;
  }
  if (!s.topic.empty () && !valid_topic (s.topic, &why)) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("Invalid MQTT 'topic' \"%s\": %s", s.topic.c_str (),
            why.c_str ()), ("mosquitto_pub_topic_check refused it"));
    return FALSE;
  }
  if (!s.tls_cert_file.empty () != !s.tls_key_file.empty ()) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("'tls-cert-file' and 'tls-key-file' go together: set both or "
            "neither"), ("tls-cert-file '%s', tls-key-file '%s'", s.tls_cert_file.c_str (),
            s.tls_key_file.c_str ()));
    return FALSE;
  }
  if (!s.tls_cert_file.empty () && s.tls_ca_file.empty ()) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("A client certificate ('tls-cert-file') needs 'tls-ca-file' "
            "(TLS is on when tls-ca-file is set)"), (NULL));
    return FALSE;
  }
  if (c.s.client_id.empty ()) {
    gchar *id = g_strdup_printf ("ruclip-%08x%08x", g_random_int (), g_random_int ());  // 23 bytes: MQTT 3.1.1's limit
    c.s.client_id = id;
    g_free (id);
  }

  // The credentials and TLS files, tried on a client that never connects:
  // what libmosquitto refuses is an error now, not a retry forever.
  struct mosquitto *probe = mosquitto_new (c.s.client_id.c_str (), true, NULL);
  if (!probe) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("Invalid 'client-id' \"%s\"", c.s.client_id.c_str ()),
        ("mosquitto_new: %s", g_strerror (errno)));
    return FALSE;
  }
  const bool configured = configure_client (probe, c, &why);
  mosquitto_destroy (probe);
  if (!configured) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("Cannot use these MQTT settings: %s", why.c_str ()),
        ("address %s", s.address.c_str ()));
    return FALSE;
  }

  auto publisher = std::make_unique<MqttPublisher> (self, c);
  if (!publisher->start (&why)) {
    GST_ELEMENT_ERROR (self, RESOURCE, FAILED, ("Cannot start publishing to MQTT"), ("%s", why.c_str ()));
    return FALSE;
  }
  GST_INFO_OBJECT (self, "publishing to %s (host %s, port %d), qos %u, client id %s, max-queue %u%s",
      s.address.c_str (), c.host.c_str (), c.port, s.qos, c.s.client_id.c_str (), s.max_queue,
      s.tls_ca_file.empty ()? "" : ", TLS");
  std::lock_guard<std::mutex> guard (st->settings_lock);  // get_property reads the counts
  st->mqtt = std::move (publisher);
  return TRUE;
}

static gboolean
gst_ruclip_publish_start (GstBaseTransform * trans)
{
  GstRuClipPublish *self = GST_RUCLIP_PUBLISH (trans);
  RuClipPublishState *st = self->state;
  {
    std::lock_guard<std::mutex> guard (st->settings_lock);
    st->active = st->settings;
    st->mqtt.reset ();  // the last stream's, kept for its counts
  }
  const Settings & s = st->active;
  st->have_frame = false;
  st->file_documents = 0;

  if (s.method == RUCLIP_PUBLISH_FILE) {
    if (s.location.empty ()) {
      GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND, ("No file: set 'location' (\"-\" for standard output)"),
          (NULL));
      return FALSE;
    }
    if (s.location == "-") {
      st->file = stdout;
    } else if (!(st->file = g_fopen (s.location.c_str (), "ab"))) {
      GST_ELEMENT_ERROR (self, RESOURCE, OPEN_WRITE, ("Could not open file \"%s\" for writing ('location').",
              s.location.c_str ()), ("%s", g_strerror (errno)));
      return FALSE;
    }
    GST_INFO_OBJECT (self, "appending JSON lines to %s", s.location.c_str ());
  } else if (!start_mqtt (self, s)) {
    return FALSE;
  }
  set_stream (self, s.stream_id.empty ()? element_name (self) : s.stream_id);
  return TRUE;
}

static gboolean
gst_ruclip_publish_stop (GstBaseTransform * trans)
{
  GstRuClipPublish *self = GST_RUCLIP_PUBLISH (trans);
  RuClipPublishState *st = self->state;
  if (st->mqtt) {
    st->mqtt->stop ();  // disconnects; what is still queued is lost (EOS waited for it)
    // The counts stay readable until the next start().
    GST_DEBUG_OBJECT (self, "stopped: %" G_GUINT64_FORMAT " published, %" G_GUINT64_FORMAT " dropped",
        st->mqtt->published (), st->mqtt->dropped ());
  }
  if (st->file && st->file != stdout)
    fclose (st->file);
  st->file = nullptr;
  return TRUE;
}

// One document to the destination, on the streaming thread.
static GstFlowReturn
publish (GstRuClipPublish * self, std::string && payload)
{
  RuClipPublishState *st = self->state;
  GST_LOG_OBJECT (self, "document: %s", payload.c_str ());
  if (st->active.method == RUCLIP_PUBLISH_MQTT) {
    st->mqtt->push (st->topic, std::move (payload));
    return GST_FLOW_OK;
  }
  payload += '\n';
  if (fwrite (payload.data (), 1, payload.size (), st->file) != payload.size () || fflush (st->file) != 0) {
    GST_ELEMENT_ERROR (self, RESOURCE, WRITE, ("Could not write to file \"%s\".", st->active.location.c_str ()),
        ("%s", g_strerror (errno)));
    return GST_FLOW_ERROR;
  }
  st->file_documents++;
  return GST_FLOW_OK;
}

static GstFlowReturn
gst_ruclip_publish_transform_ip (GstBaseTransform * trans, GstBuffer * buffer)
{
  GstRuClipPublish *self = GST_RUCLIP_PUBLISH (trans);
  RuClipPublishState *st = self->state;
  const GstStructure *r = ruclip_buffer_get_result (buffer);
  guint64 frame = 0;
  if (!r || !gst_structure_get_uint64 (r, "frame", &frame))
    return GST_FLOW_OK;
  // A result rides on every buffer until the next one: publish it once.
  if (st->have_frame && frame == st->last_frame)
    return GST_FLOW_OK;
  st->have_frame = true;
  st->last_frame = frame;
  GST_LOG_OBJECT (self, "analysis of frame %" G_GUINT64_FORMAT " (on the buffer at %" GST_TIME_FORMAT ")", frame,
      GST_TIME_ARGS (GST_BUFFER_PTS (buffer)));
  return publish (self, analysis_document (st->stream, r, &trans->segment));
}

static gboolean
gst_ruclip_publish_sink_event (GstBaseTransform * trans, GstEvent * event)
{
  GstRuClipPublish *self = GST_RUCLIP_PUBLISH (trans);
  RuClipPublishState *st = self->state;
  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_STREAM_START:{
      st->have_frame = false;
      const gchar *id = NULL;
      gst_event_parse_stream_start (event, &id);
      if (st->active.stream_id.empty () && id)
        set_stream (self, id);
      break;
    }
    case GST_EVENT_FLUSH_START:
      if (st->mqtt)
        st->mqtt->set_flushing (true);  // ends an EOS wait
      break;
    case GST_EVENT_FLUSH_STOP:
      st->have_frame = false;
      if (st->mqtt)
        st->mqtt->set_flushing (false);
      break;
    case GST_EVENT_CUSTOM_DOWNSTREAM:{
      const GstStructure *s = gst_event_get_structure (event);
      if (!s || !gst_structure_has_name (s, "ruclip-segment"))
        break;
      std::string doc = segment_document (st->stream, s);
      if (doc.empty ()) {
        GST_WARNING_OBJECT (self, "ruclip-segment event without event=start|end, not published: %" GST_PTR_FORMAT,
            s);
        break;
      }
      GST_DEBUG_OBJECT (self, "segment event: %" GST_PTR_FORMAT, s);
      if (publish (self, std::move (doc)) != GST_FLOW_OK) {
        gst_event_unref (event);
        return FALSE;
      }
      break;
    }
    case GST_EVENT_EOS:
      if (st->mqtt) {
        const guint64 timeout = st->active.flush_timeout;
        GST_DEBUG_OBJECT (self, "EOS: waiting up to %" GST_TIME_FORMAT " for the queue to drain",
            GST_TIME_ARGS (timeout));
        const size_t left = st->mqtt->wait_delivered (timeout);
        if (left) {
          gchar *within = timeout == GST_CLOCK_TIME_NONE ? g_strdup ("before the wait was interrupted") :
              g_strdup_printf ("within flush-timeout (%.1f s)", timeout / 1e9);
          GST_ELEMENT_WARNING (self, RESOURCE, WRITE, ("%zu document(s) not delivered to the MQTT broker at %s %s; "
                  "still trying until the element stops", left, st->active.address.c_str (), within),
              ("%" G_GUINT64_FORMAT " published, %" G_GUINT64_FORMAT " dropped", st->mqtt->published (),
                  st->mqtt->dropped ()));
          g_free (within);
        } else {
          GST_DEBUG_OBJECT (self, "EOS: all delivered");
        }
      }
      break;
    default:
      break;
  }
  return GST_BASE_TRANSFORM_CLASS (parent_class)->sink_event (trans, event);
}

static GstStateChangeReturn
gst_ruclip_publish_change_state (GstElement * element, GstStateChange transition)
{
  RuClipPublishState *st = GST_RUCLIP_PUBLISH (element)->state;
  // Stopping while EOS waits for the broker: end the wait, so that the
  // streaming thread lets go of the pads.
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY && st->mqtt)
    st->mqtt->set_flushing (true);
  return GST_ELEMENT_CLASS (parent_class)->change_state (element, transition);
}

static void
gst_ruclip_publish_set_property (GObject * object, guint prop_id, const GValue * value, GParamSpec * pspec)
{
  RuClipPublishState *st = GST_RUCLIP_PUBLISH (object)->state;
  std::lock_guard<std::mutex> guard (st->settings_lock);
  Settings & s = st->settings;
  auto str = [value] { const gchar *v = g_value_get_string (value); return std::string (v ? v : ""); };
  switch (prop_id) {
    case PROP_METHOD: s.method = (RuClipPublishMethod) g_value_get_enum (value); break;
    case PROP_LOCATION: s.location = str (); break;
    case PROP_STREAM_ID: s.stream_id = str (); break;
    case PROP_ADDRESS: s.address = str (); break;
    case PROP_TOPIC: s.topic = str (); break;
    case PROP_QOS: s.qos = g_value_get_uint (value); break;
    case PROP_CLIENT_ID: s.client_id = str (); break;
    case PROP_USERNAME: s.username = str (); break;
    case PROP_PASSWORD: s.password = str (); break;
    case PROP_TLS_CA_FILE: s.tls_ca_file = str (); break;
    case PROP_TLS_CERT_FILE: s.tls_cert_file = str (); break;
    case PROP_TLS_KEY_FILE: s.tls_key_file = str (); break;
    case PROP_MAX_QUEUE: s.max_queue = g_value_get_uint (value); break;
    case PROP_FLUSH_TIMEOUT: s.flush_timeout = g_value_get_uint64 (value); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec); break;
  }
}

static void
gst_ruclip_publish_get_property (GObject * object, guint prop_id, GValue * value, GParamSpec * pspec)
{
  RuClipPublishState *st = GST_RUCLIP_PUBLISH (object)->state;
  std::lock_guard<std::mutex> guard (st->settings_lock);
  const Settings & s = st->settings;
  switch (prop_id) {
    case PROP_METHOD: g_value_set_enum (value, s.method); break;
    case PROP_LOCATION: g_value_set_string (value, s.location.c_str ()); break;
    case PROP_STREAM_ID: g_value_set_string (value, s.stream_id.c_str ()); break;
    case PROP_ADDRESS: g_value_set_string (value, s.address.c_str ()); break;
    case PROP_TOPIC: g_value_set_string (value, s.topic.c_str ()); break;
    case PROP_QOS: g_value_set_uint (value, s.qos); break;
    case PROP_CLIENT_ID: g_value_set_string (value, s.client_id.c_str ()); break;
    case PROP_USERNAME: g_value_set_string (value, s.username.c_str ()); break;
    case PROP_TLS_CA_FILE: g_value_set_string (value, s.tls_ca_file.c_str ()); break;
    case PROP_TLS_CERT_FILE: g_value_set_string (value, s.tls_cert_file.c_str ()); break;
    case PROP_TLS_KEY_FILE: g_value_set_string (value, s.tls_key_file.c_str ()); break;
    case PROP_MAX_QUEUE: g_value_set_uint (value, s.max_queue); break;
    case PROP_FLUSH_TIMEOUT: g_value_set_uint64 (value, s.flush_timeout); break;
    // The counts: of the running stream, or of the last one until the next start().
    case PROP_DOCUMENTS_PUBLISHED:
      g_value_set_uint64 (value, st->mqtt ? st->mqtt->published () : (guint64) st->file_documents);
      break;
    case PROP_DOCUMENTS_DROPPED: g_value_set_uint64 (value, st->mqtt ? st->mqtt->dropped () : 0); break;
    case PROP_CONNECTED: g_value_set_boolean (value, st->mqtt && st->mqtt->connected ()); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec); break;
  }
}

static void
gst_ruclip_publish_finalize (GObject * object)
{
  GstRuClipPublish *self = GST_RUCLIP_PUBLISH (object);
  delete self->state;  // stops the MQTT thread if it still runs
  self->state = NULL;
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_ruclip_publish_init (GstRuClipPublish * self)
{
  self->state = new RuClipPublishState ();
  // Pass-through: buffers are only read, never made writable or copied.
  gst_base_transform_set_in_place (GST_BASE_TRANSFORM (self), TRUE);
  gst_base_transform_set_passthrough (GST_BASE_TRANSFORM (self), TRUE);
}

static void
gst_ruclip_publish_class_init (GstRuClipPublishClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);

  gobject_class->set_property = gst_ruclip_publish_set_property;
  gobject_class->get_property = gst_ruclip_publish_get_property;
  gobject_class->finalize = gst_ruclip_publish_finalize;

  const GParamFlags rw_ready = (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  const GParamFlags wo_ready = (GParamFlags) (G_PARAM_WRITABLE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  const GParamFlags ro = (GParamFlags) (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  g_object_class_install_property (gobject_class, PROP_METHOD,
      g_param_spec_enum ("method", "Method",
          "Where the documents go: file (JSON lines appended to 'location') or mqtt (one message per document "
          "to 'topic' on the broker at 'address')",
          GST_TYPE_RUCLIP_PUBLISH_METHOD, DEFAULT_METHOD, rw_ready));
  g_object_class_install_property (gobject_class, PROP_LOCATION,
      g_param_spec_string ("location", "Location",
          "method=file: the file the documents are appended to, one JSON document per line, flushed after "
          "each; \"-\" is standard output",
          DEFAULT_LOCATION, rw_ready));
  g_object_class_install_property (gobject_class, PROP_STREAM_ID,
      g_param_spec_string ("stream-id", "Stream id",
          "The \"stream\" of the documents (and of the default topic), e.g. a camera's name. Empty: the stream "
          "id of the STREAM_START event, else the element's name",
          NULL, rw_ready));
  g_object_class_install_property (gobject_class, PROP_ADDRESS,
      g_param_spec_string ("address", "Address",
          "method=mqtt: the broker as host:port (host alone: port 1883; IPv6 as [::1]:1883). A broker that "
          "can't be reached is a warning: documents queue and the element keeps trying",
          DEFAULT_ADDRESS, rw_ready));
  g_object_class_install_property (gobject_class, PROP_TOPIC,
      g_param_spec_string ("topic", "Topic",
          "method=mqtt: the topic to publish to (no wildcards '+' or '#'). Empty: ruclip/<stream> (see "
          "stream-id)",
          NULL, rw_ready));
  g_object_class_install_property (gobject_class, PROP_QOS,
      g_param_spec_uint ("qos", "QoS",
          "method=mqtt: 0, at most once (sent, never resent); 1, at least once: a document stays queued until "
          "the broker acknowledges it and is sent again after a reconnect",
          0, 1, DEFAULT_QOS, rw_ready));
  g_object_class_install_property (gobject_class, PROP_CLIENT_ID,
      g_param_spec_string ("client-id", "Client id",
          "method=mqtt: the MQTT client id. Empty: generated, ruclip-<16 hex digits>, new at each start",
          NULL, rw_ready));
  g_object_class_install_property (gobject_class, PROP_USERNAME,
      g_param_spec_string ("username", "Username", "method=mqtt: the user name to log in with (empty: none)", NULL,
          rw_ready));
  g_object_class_install_property (gobject_class, PROP_PASSWORD,
      g_param_spec_string ("password", "Password",
          "method=mqtt: the password, with 'username' (write-only: it isn't shown)", NULL, wo_ready));
  g_object_class_install_property (gobject_class, PROP_TLS_CA_FILE,
      g_param_spec_string ("tls-ca-file", "TLS CA file",
          "method=mqtt: PEM file of the certificate authorities the broker's certificate must be signed by. "
          "Set: the connection is TLS (then the port is usually 8883)",
          NULL, rw_ready));
  g_object_class_install_property (gobject_class, PROP_TLS_CERT_FILE,
      g_param_spec_string ("tls-cert-file", "TLS certificate file",
          "method=mqtt with tls-ca-file: this client's PEM certificate, for brokers that ask for one (with "
          "tls-key-file)",
          NULL, rw_ready));
  g_object_class_install_property (gobject_class, PROP_TLS_KEY_FILE,
      g_param_spec_string ("tls-key-file", "TLS key file",
          "method=mqtt with tls-cert-file: the certificate's PEM private key (not encrypted)", NULL, rw_ready));
  g_object_class_install_property (gobject_class, PROP_MAX_QUEUE,
      g_param_spec_uint ("max-queue", "Maximum queue",
          "method=mqtt: most documents kept while they wait for the broker (including those sent and not yet "
          "acknowledged); past it the oldest is dropped and counted in documents-dropped",
          1, G_MAXINT, DEFAULT_MAX_QUEUE, rw_ready));
  g_object_class_install_property (gobject_class, PROP_FLUSH_TIMEOUT,
      g_param_spec_uint64 ("flush-timeout", "Flush timeout",
          "method=mqtt: nanoseconds EOS waits for the queued documents to be delivered before it goes on; "
          "what is left then is counted in a warning (0: don't wait; 18446744073709551615: until they are). "
          "A flush or stopping the pipeline ends the wait",
          0, G_MAXUINT64, DEFAULT_FLUSH_TIMEOUT, rw_ready));
  g_object_class_install_property (gobject_class, PROP_DOCUMENTS_PUBLISHED,
      g_param_spec_uint64 ("documents-published", "Documents published",
          "Documents delivered since the stream started: written (file), acknowledged by the broker (qos 1) or "
          "sent (qos 0)",
          0, G_MAXUINT64, 0, ro));
  g_object_class_install_property (gobject_class, PROP_DOCUMENTS_DROPPED,
      g_param_spec_uint64 ("documents-dropped", "Documents dropped",
          "method=mqtt: documents dropped since the stream started because more than max-queue waited", 0,
          G_MAXUINT64, 0, ro));
  g_object_class_install_property (gobject_class, PROP_CONNECTED,
      g_param_spec_boolean ("connected", "Connected", "method=mqtt: connected to the broker right now", FALSE, ro));

  GstCaps *caps = gst_caps_new_any ();
  gst_element_class_add_pad_template (element_class, gst_pad_template_new ("sink", GST_PAD_SINK, GST_PAD_ALWAYS, caps));
  gst_element_class_add_pad_template (element_class, gst_pad_template_new ("src", GST_PAD_SRC, GST_PAD_ALWAYS, caps));
  gst_caps_unref (caps);

  gst_element_class_set_static_metadata (element_class, "ruCLIP label publisher", "Filter/Analyzer",
      "Publishes ruclipfilter's labels (RuClipMeta) and segment events as JSON documents to a file or an MQTT "
      "broker; the stream passes through", "ruclip-gst developers");

  element_class->change_state = GST_DEBUG_FUNCPTR (gst_ruclip_publish_change_state);
  trans_class->start = GST_DEBUG_FUNCPTR (gst_ruclip_publish_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_ruclip_publish_stop);
  trans_class->transform_ip = GST_DEBUG_FUNCPTR (gst_ruclip_publish_transform_ip);
  trans_class->sink_event = GST_DEBUG_FUNCPTR (gst_ruclip_publish_sink_event);
  trans_class->transform_ip_on_passthrough = TRUE;  // read the meta of every buffer

  gst_type_mark_as_plugin_api (GST_TYPE_RUCLIP_PUBLISH_METHOD, (GstPluginAPIFlags) 0);
  GST_DEBUG_CATEGORY_INIT (gst_ruclip_publish_debug, "ruclippublish", 0, "ruCLIP label publisher");
  mosquitto_lib_init ();  // once, with the class; libmosquitto is never cleaned up (process lifetime)
}
