// ruclippublish's MQTT client (mqtt_client.h).
#include "mqtt_client.h"

#include <glib-unix.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>

GST_DEBUG_CATEGORY_EXTERN (gst_ruclip_publish_debug);
#define GST_CAT_DEFAULT gst_ruclip_publish_debug

namespace {

using Clock = std::chrono::steady_clock;

// Reconnecting: the first retry after kBackoffMin, doubling up to kBackoffMax.
constexpr auto kBackoffMin = std::chrono::milliseconds (100);
constexpr auto kBackoffMax = std::chrono::milliseconds (5000);
// A connection attempt with no CONNACK after this is given up and retried.
constexpr auto kConnectTimeout = std::chrono::seconds (10);
constexpr int kKeepaliveSeconds = 30;
// QoS 1 documents handed to libmosquitto at once, awaiting their PUBACK
// (libmosquitto's own default in-flight limit).
constexpr size_t kInFlightWindow = 20;

std::string
mosquitto_error (int rc)
{
  return rc == MOSQ_ERR_ERRNO ? g_strerror (errno) : mosquitto_strerror (rc);
}

// Credentials and TLS on a client object; false and why if libmosquitto refuses them.
bool
configure_client (struct mosquitto *mosq, const MqttConfig & c, std::string *why)
{
  if (!c.username.empty ()) {
    const int rc = mosquitto_username_pw_set (mosq, c.username.c_str (),
        c.password.empty ()? NULL : c.password.c_str ());
    if (rc != MOSQ_ERR_SUCCESS) {
      *why = "username/password: " + mosquitto_error (rc);
      return false;
    }
  }
  if (!c.tls_ca_file.empty ()) {
    // An encrypted key gets no password rather than a prompt on the terminal.
    auto no_password =[](char *, int, int, void *) -> int { return 0; };
    const int rc = mosquitto_tls_set (mosq, c.tls_ca_file.c_str (), NULL,
        c.tls_cert_file.empty ()? NULL : c.tls_cert_file.c_str (),
        c.tls_key_file.empty ()? NULL : c.tls_key_file.c_str (), no_password);
    if (rc != MOSQ_ERR_SUCCESS) {
      *why = "TLS (tls-ca-file '" + c.tls_ca_file + "', tls-cert-file '" + c.tls_cert_file + "', tls-key-file '" +
          c.tls_key_file + "'): " + mosquitto_error (rc) + " (are the files there and readable?)";
      return false;
    }
  }
  return true;
}

}  // namespace

bool
parse_mqtt_address (const std::string & address, std::string *host, int *port, std::string *why)
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
  *port = kMqttDefaultPort;
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

bool
valid_mqtt_topic (const std::string & topic, std::string *why)
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

std::string
default_mqtt_topic (const std::string & stream, const std::string & element_name)
{
  std::string topic = "ruclip/" + stream;
  for (char &c : topic)
    if (c == '+' || c == '#')
      c = '_';
  std::string why;
  return valid_mqtt_topic (topic, &why) ? topic : "ruclip/" + element_name;
}

bool
check_mqtt_settings (struct mosquitto *probe, const MqttConfig & config, std::string *why)
{
  return configure_client (probe, config, why);
}


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
    while (queue_.size () >= config_.max_queue) {
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
        " dropped so far", config_.max_queue, (guint64) dropped_);
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
  mosq_ = mosquitto_new (config_.client_id.c_str (), true, this);
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
  GST_DEBUG_OBJECT (element_, "connecting to %s (client id %s)", config_.address.c_str (),
      config_.client_id.c_str ());
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
      was_connected ? "lost the connection to" : "could not connect to", config_.address.c_str (), why.c_str (),
      unacknowledged, queued);
  if (outage_reported_)
    return;
  outage_reported_ = true;
  if (was_connected)
    GST_ELEMENT_WARNING (element_, RESOURCE, WRITE, ("Lost the connection to the MQTT broker at %s; reconnecting. "
            "Documents are queued meanwhile (at most %u)", config_.address.c_str (), config_.max_queue),
        ("%s", why.c_str ()));
  else if (refused_)
    GST_ELEMENT_WARNING (element_, RESOURCE, OPEN_WRITE, ("The MQTT broker at %s refused the connection (%s); it "
            "keeps trying. Documents are queued meanwhile (at most %u)", config_.address.c_str (), why.c_str (),
            config_.max_queue), ("client id %s, username '%s'", config_.client_id.c_str (),
            config_.username.c_str ()));
  else
    GST_ELEMENT_WARNING (element_, RESOURCE, OPEN_WRITE, ("The MQTT broker at %s isn't reachable; it keeps "
            "trying. Documents are queued meanwhile (at most %u)", config_.address.c_str (), config_.max_queue),
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
      if (config_.qos == 0)
        continue;  // counted by send_queued when handed over
      for (size_t i = 0; i < in_flight_; ++i)
        if (queue_[i].mid == mid) {
          queue_.erase (queue_.begin () + i);
          in_flight_--;
          done++;
          break;
        }
    }
    // Under the lock: a drain that finds the queue empty finds them counted.
    published_ += done;
  }
  acked_.clear ();
  changed_.notify_all ();
  GST_LOG_OBJECT (element_, "%" G_GUINT64_FORMAT " document(s) %s, %" G_GUINT64_FORMAT " so far", done,
      config_.qos ? "acknowledged" : "sent", (guint64) published_);
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
        (int) config_.qos, false);
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
      if (rc == MOSQ_ERR_SUCCESS && config_.qos > 0) {
        queue_[in_flight_].mid = mid;
        in_flight_++;
      } else {
        // QoS 0 is done once handed over: counted before the queue looks
        // empty, so a drain that returns sees it published.
        if (rc == MOSQ_ERR_SUCCESS)
          published_++;
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
  if (!config_.tls_ca_file.empty ())
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
  GST_DEBUG_OBJECT (element_, "MQTT thread started for %s", config_.address.c_str ());
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
      GST_INFO_OBJECT (element_, "connected to %s as %s, %zu document(s) to send", config_.address.c_str (),
          config_.client_id.c_str (), queued);
      if (outage_reported_)
        GST_ELEMENT_INFO (element_, RESOURCE, WRITE, ("Connected to the MQTT broker at %s again",
                config_.address.c_str ()), ("%zu document(s) queued", queued));
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

