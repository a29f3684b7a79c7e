// ruclippublish's MQTT client: a bounded queue the streaming thread appends
// to, and a thread of its own that owns the broker connection (libmosquitto).
// Warnings and debug lines go out as the element's.
#pragma once
#include <gst/gst.h>
#include <mosquitto.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

constexpr int kMqttDefaultPort = 1883;

// What a connection needs, checked by the element at start(): its properties
// (client_id filled in when generated) and the address parsed.
struct MqttConfig {
  std::string address;  // as given, for messages
  std::string host;
  int port = kMqttDefaultPort;
  guint qos = 1;
  std::string client_id;
  std::string username;
  std::string password;
  std::string tls_ca_file;
  std::string tls_cert_file;
  std::string tls_key_file;
  guint max_queue = 1000;
};

// "host:port", "host" (port 1883) or "[v6 address]:port"; false, and why, otherwise.
bool parse_mqtt_address (const std::string & address, std::string *host, int *port, std::string *why);
// A publish topic MQTT accepts (no wildcards, valid UTF-8, not too long); else why not.
bool valid_mqtt_topic (const std::string & topic, std::string *why);
// The topic for a stream when none is set: ruclip/<stream>, wildcards replaced.
std::string default_mqtt_topic (const std::string & stream, const std::string & element_name);
// The credentials and TLS files, tried on `probe`, a client that never
// connects: false, and why, when libmosquitto refuses them.
bool check_mqtt_settings (struct mosquitto *probe, const MqttConfig & config, std::string *why);

// The MQTT side: a bounded queue the streaming thread appends to, and a
// thread of its own that owns the broker connection. Each connection is a
// fresh libmosquitto client driven by this thread (poll() on its socket and a
// wake-up pipe, then mosquitto_loop() without waiting), so documents not yet
// acknowledged are exactly those left in the queue: after a reconnect they
// are all sent again, oldest first.
class MqttPublisher {
public:
  using Clock = std::chrono::steady_clock;

  MqttPublisher (GstElement * element, MqttConfig config) : element_ (element), config_ (std::move (config)) {}
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

  GstElement *element_;
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

