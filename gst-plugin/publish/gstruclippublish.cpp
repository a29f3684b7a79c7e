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

#include <glib/gstdio.h>
#include <mosquitto.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>

#include "documents.h"
#include "mqtt_client.h"
#include "ruclipmeta.h"

// Not static: the MQTT client (mqtt_client.cpp) logs as the element.
GST_DEBUG_CATEGORY (gst_ruclip_publish_debug);
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

namespace {

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

}  // namespace

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
    ruclip_meta_register ());

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
  st->topic = st->active.topic.empty ()? default_mqtt_topic (stream, element_name (self)) : st->active.topic;
  const bool mqtt = st->active.method == RUCLIP_PUBLISH_MQTT;
  GST_DEBUG_OBJECT (self, "stream \"%s\"%s%s", stream.c_str (), mqtt ? ", topic " : "", mqtt ? st->topic.c_str () : "");
}

static gboolean
start_mqtt (GstRuClipPublish * self, const Settings & s)
{
  RuClipPublishState *st = self->state;
  MqttConfig c;
  std::string why;
  c.address = s.address;
  c.qos = s.qos;
  c.client_id = s.client_id;
  c.username = s.username;
  c.password = s.password;
  c.tls_ca_file = s.tls_ca_file;
  c.tls_cert_file = s.tls_cert_file;
  c.tls_key_file = s.tls_key_file;
  c.max_queue = s.max_queue;
  if (!parse_mqtt_address (s.address, &c.host, &c.port, &why)) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("Invalid 'address' \"%s\": expected host:port, e.g. "
            "127.0.0.1:1883", s.address.c_str ()), ("%s", why.c_str ()));
    return FALSE;
  }
  if (!s.topic.empty () && !valid_mqtt_topic (s.topic, &why)) {
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
  if (c.client_id.empty ()) {
    gchar *id = g_strdup_printf ("ruclip-%08x%08x", g_random_int (), g_random_int ());  // 23 bytes: MQTT 3.1.1's limit
    c.client_id = id;
    g_free (id);
  }
  // What libmosquitto refuses is an error now, not a retry forever.
  struct mosquitto *probe = mosquitto_new (c.client_id.c_str (), true, NULL);
  if (!probe) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("Invalid 'client-id' \"%s\"", c.client_id.c_str ()),
        ("mosquitto_new: %s", g_strerror (errno)));
    return FALSE;
  }
  const bool usable = check_mqtt_settings (probe, c, &why);
  mosquitto_destroy (probe);
  if (!usable) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("Cannot use these MQTT settings: %s", why.c_str ()),
        ("address %s", s.address.c_str ()));
    return FALSE;
  }

  auto publisher = std::make_unique<MqttPublisher> (GST_ELEMENT (self), c);
  if (!publisher->start (&why)) {
    GST_ELEMENT_ERROR (self, RESOURCE, FAILED, ("Cannot start publishing to MQTT"), ("%s", why.c_str ()));
    return FALSE;
  }
  GST_INFO_OBJECT (self, "publishing to %s (host %s, port %d), qos %u, client id %s, max-queue %u%s",
      s.address.c_str (), c.host.c_str (), c.port, s.qos, c.client_id.c_str (), s.max_queue,
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
  const guint64 frame = r ? ruclip_result_frame (r) : G_MAXUINT64;
  if (frame == G_MAXUINT64)
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
      if (!s || !gst_structure_has_name (s, RUCLIP_SEGMENT_NAME))
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
