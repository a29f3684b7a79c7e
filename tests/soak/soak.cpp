// Soak test of ruclipfilter in mode=async on a live source, as an application
// runs it: an application thread swaps the label set every 100 frames and the
// resolution (and raw format) every 2,000 frames while frames keep flowing.
// Checks, and prints as one JSON line:
//  - memory stays flat after warm-up: resident memory at most 6 MiB above its
//    value at frame 5,000 and at most 1 MiB above its value 10,000 frames (one
//    cycle of frame sizes) earlier; malloc'ed bytes in use at most 0.5 MiB above;
//  - every analysis is reported exactly once (one "ruclip" bus message per
//    analyzed frame, in order), and the buffers carry exactly those results:
//    right frame/source-pts, never an older one after a newer one, never a
//    buffer without a result once the first one arrived, always a whole set;
//  - the counters add up (frames-analyzed + requests-dropped = sampled frames,
//    frames-analyzed = bus messages, sink buffers = frames sent).
// Exit status 0 when all hold, 1 otherwise.
//
//   soak [--frames N] [--fps F] [--interval I] [--rss-bound-mib M] [--rss-cycle-bound-mib M]
// Needs GST_PLUGIN_PATH to find the plugin; the model is tests/data's tiny one
// ($RUCLIP_TEST_DATA overrides the folder).
#include <gst/gst.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "ruclipmeta.h"

namespace {

// Three whole label sets the application cycles through (different sizes, so
// a mixed-up result can't pass as a whole set).
const char* const kLabelSets[] = {"кошка;собака;самолёт;грузовик", "дерево;море;город", "красный круг;синий квадрат"};
// Raw formats and sizes the source switches between.
const char* const kCaps[] = {"format=I420,width=320,height=240", "format=RGB,width=640,height=480",
                             "format=NV12,width=160,height=120", "format=BGRx,width=480,height=270",
                             "format=I420,width=64,height=48"};
constexpr guint64 kLabelPeriod = 100, kCapsPeriod = 2000, kRssPeriod = 1000, kWarmup = 5000;

struct Options {
  guint64 frames = 20000;
  int fps = 1000;
  guint interval = 2;
  double rss_bound_mib = 6;        // peak after frame 5,000 minus RSS at frame 5,000
  double rss_cycle_bound_mib = 1;  // RSS at frame N+10,000 minus at N (same frame size), N >= 5,000
  double heap_cycle_bound_mib = 0.5;  // the same for malloc'ed bytes in use: a leak of >= 50 B/frame
};

// malloc'ed bytes in use (all arenas, mmapped chunks included): tells a leak
// (grows) from the allocator keeping freed memory (RSS grows, this doesn't).
double heap_mib() {
  const struct mallinfo2 m = mallinfo2();
  return double(m.uordblks + m.hblkhd) / (1024.0 * 1024.0);
}

double rss_mib() {
  long pages = 0, resident = 0;
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return double(resident) * sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0);
}

// The label set (index into kLabelSets) a result was scored against; -1: none.
int label_set_of(const GstStructure* s) {
  std::vector<std::string> got;
  for (guint i = 0; i < ruclip_result_n_labels(s); ++i) got.push_back(ruclip_result_label(s, i));
  std::sort(got.begin(), got.end());
  for (int k = 0; k < 3; ++k) {
    std::vector<std::string> want;
    std::stringstream ss(kLabelSets[k]);
    for (std::string l; std::getline(ss, l, ';');) want.push_back(l);
    std::sort(want.begin(), want.end());
    if (got == want) return k;
  }
  return -1;
}

std::string caps_string(int fps, size_t i) {
  return std::string("video/x-raw,") + kCaps[i % 5] + ",framerate=" + std::to_string(fps) + "/1";
}

// Everything the streaming thread (fakesink handoff), the application thread
// and the main thread (bus) share.
struct Soak {
  Options opt;
  GstElement *filter = nullptr, *capsfilter = nullptr;

  // Streaming thread only (read by the main thread after the pipeline stopped).
  std::vector<GstClockTime> pts;         // per sink buffer
  std::vector<guint64> caps_at;          // sink buffer index at each CAPS event
  guint64 last_meta_frame = G_MAXUINT64; // frame of the result on the previous buffer
  guint64 results_on_buffers = 0;        // distinct results seen on buffers
  std::vector<bool> on_buffers;          // per frame: its result was seen on a buffer
  std::map<std::string, std::pair<guint64, guint64>> failures;  // what -> (count, first buffer)

  // Waking the application thread.
  std::atomic<guint64> sink_count{0};
  std::mutex lock;
  std::condition_variable wake;
  bool done = false;
  // Application thread only (read by the main thread after joining it).
  guint64 label_changes = 0, caps_changes = 0;
  struct Sample {
    guint64 frame;
    double rss_mib, heap_mib;
  };
  std::vector<Sample> rss;

  void fail(const std::string& what, guint64 buffer) {
    auto& f = failures.emplace(what, std::make_pair(guint64(0), buffer)).first->second;
    ++f.first;
  }
};

void on_handoff(GstElement*, GstBuffer* buffer, GstPad*, gpointer data) {
  auto* soak = static_cast<Soak*>(data);
  const guint64 i = soak->pts.size();
  soak->pts.push_back(GST_BUFFER_PTS(buffer));
  const GstStructure* r = ruclip_buffer_get_result(buffer);
  if (!r) {
    // No result yet is fine; losing one once results flow is not (no flush here).
    if (soak->last_meta_frame != G_MAXUINT64) soak->fail("a buffer without a result after results began", i);
  } else {
    guint64 frame = G_MAXUINT64;
    gst_structure_get_uint64(r, "frame", &frame);
    if (ruclip_result_is_fresh(r)) soak->fail("a result marked fresh in async mode", i);
    if (frame == i) soak->fail("a buffer carried its own frame's result (async results ride on later buffers)", i);
    else if (frame > i) soak->fail("a buffer carried a result of a later frame", i);
    else if (ruclip_result_source_pts(r) != soak->pts[frame]) soak->fail("a result with the wrong source-pts", i);
    if (frame % soak->opt.interval != 0) soak->fail("a result of a frame that was not sampled", i);
    if (label_set_of(r) < 0) soak->fail("a result not scored against one whole label set", i);
    if (soak->last_meta_frame != G_MAXUINT64 && frame < soak->last_meta_frame)
      soak->fail("a result older than the previous buffer's", i);
    if (frame != soak->last_meta_frame && frame < soak->on_buffers.size()) {
      if (soak->on_buffers[frame]) soak->fail("a result came back after a newer one", i);
      soak->on_buffers[frame] = true;
      ++soak->results_on_buffers;
    }
    soak->last_meta_frame = frame;
  }
  const guint64 n = ++soak->sink_count;
  if (n % kLabelPeriod == 0) {
    std::lock_guard<std::mutex> guard(soak->lock);
    soak->wake.notify_one();
  }
}

GstPadProbeReturn on_sink_event(GstPad*, GstPadProbeInfo* info, gpointer data) {
  auto* soak = static_cast<Soak*>(data);
  if (GST_EVENT_TYPE(GST_PAD_PROBE_INFO_EVENT(info)) == GST_EVENT_CAPS) soak->caps_at.push_back(soak->pts.size());
  return GST_PAD_PROBE_OK;
}

// The application: reacts to the frame count like an app reacting to its own
// events, from its own thread, while the streaming thread goes on.
void application(Soak* soak) {
  guint64 next = kLabelPeriod;
  std::unique_lock<std::mutex> lk(soak->lock);
  for (;;) {
    soak->wake.wait(lk, [&] { return soak->done || soak->sink_count >= next; });
    if (soak->sink_count < next) return;  // done, and every milestone handled
    lk.unlock();
    if (next % kRssPeriod == 0) soak->rss.push_back({next, rss_mib(), heap_mib()});
    if (next < soak->opt.frames) {
      g_object_set(soak->filter, "labels", kLabelSets[(next / kLabelPeriod) % 3], NULL);
      ++soak->label_changes;
      if (next % kCapsPeriod == 0) {
        GstCaps* caps = gst_caps_from_string(caps_string(soak->opt.fps, next / kCapsPeriod).c_str());
        g_object_set(soak->capsfilter, "caps", caps, NULL);
        gst_caps_unref(caps);
        ++soak->caps_changes;
      }
    }
    next += kLabelPeriod;
    lk.lock();
  }
}

struct Message {
  guint64 frame;
  GstClockTime pts;
  int label_set;
};

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) out += c == '"' || c == '\\' ? std::string("\\") + c : std::string(1, c);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  gst_init(&argc, &argv);
  Soak soak;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--frames") soak.opt.frames = std::strtoull(argv[i + 1], nullptr, 10);
    else if (a == "--fps") soak.opt.fps = std::atoi(argv[i + 1]);
    else if (a == "--interval") soak.opt.interval = std::max(1, std::atoi(argv[i + 1]));
    else if (a == "--rss-bound-mib") soak.opt.rss_bound_mib = std::atof(argv[i + 1]);
    else if (a == "--rss-cycle-bound-mib") soak.opt.rss_cycle_bound_mib = std::atof(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: soak [--frames N] [--fps F] [--interval I] [--rss-bound-mib M] "
                           "[--rss-cycle-bound-mib M]\n");
      return 2;
    }
  }
  const Options& opt = soak.opt;
  // Everything sized up front: the program's own growth must not look like the element's.
  soak.pts.reserve(opt.frames);
  soak.on_buffers.assign(opt.frames, false);
  soak.rss.reserve(opt.frames / kRssPeriod + 1);
  const char* data = std::getenv("RUCLIP_TEST_DATA");
  const std::string model = std::string(data && *data ? data : RUCLIP_TEST_DATA) + "/ruclip-tiny-v2";

  const std::string desc = "videotestsrc is-live=true pattern=ball num-buffers=" + std::to_string(opt.frames) +
                           " ! capsfilter name=cf caps=\"" + caps_string(opt.fps, 0) +
                           "\" ! ruclipfilter name=rc mode=async post-messages=true num-threads=1 interval=" +
                           std::to_string(opt.interval) + " model=\"" + model + "\" labels=\"" + kLabelSets[0] +
                           "\" ! fakesink name=sink sync=false signal-handoffs=true";
  GError* error = nullptr;
  GstElement* pipeline = gst_parse_launch(desc.c_str(), &error);
  if (!pipeline || error) {  // e.g. no ruclipfilter: GST_PLUGIN_PATH not set
    std::fprintf(stderr, "soak: %s\n", error ? error->message : "cannot build the pipeline");
    return 1;
  }
  soak.filter = gst_bin_get_by_name(GST_BIN(pipeline), "rc");
  soak.capsfilter = gst_bin_get_by_name(GST_BIN(pipeline), "cf");
  GstElement* sink = gst_bin_get_by_name(GST_BIN(pipeline), "sink");
  g_signal_connect(sink, "handoff", G_CALLBACK(on_handoff), &soak);
  GstPad* sink_pad = gst_element_get_static_pad(sink, "sink");
  gst_pad_add_probe(sink_pad, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, on_sink_event, &soak, nullptr);
  gst_object_unref(sink_pad);

  std::vector<std::string> failures;
  auto check = [&](bool ok, const std::string& what) {
    if (!ok) failures.push_back(what);
  };
  std::thread app(application, &soak);
  const auto start = std::chrono::steady_clock::now();
  gst_element_set_state(pipeline, GST_STATE_PLAYING);

  // The main thread is the bus reader: one "ruclip" message per analysis.
  std::vector<Message> messages;
  messages.reserve(opt.frames / opt.interval + 1);
  GstBus* bus = gst_element_get_bus(pipeline);
  bool eos = false;
  for (;;) {
    GstMessage* m = gst_bus_timed_pop_filtered(
        bus, 600 * GST_SECOND,
        GstMessageType(GST_MESSAGE_ELEMENT | GST_MESSAGE_EOS | GST_MESSAGE_ERROR | GST_MESSAGE_WARNING));
    if (!m) {
      failures.push_back("no EOS within 600 s");
      break;
    }
    const GstMessageType type = GST_MESSAGE_TYPE(m);
    if (type == GST_MESSAGE_ELEMENT && gst_structure_has_name(gst_message_get_structure(m), "ruclip")) {
      const GstStructure* s = gst_message_get_structure(m);
      Message msg{G_MAXUINT64, ruclip_result_source_pts(s), label_set_of(s)};
      gst_structure_get_uint64(s, "frame", &msg.frame);
      messages.push_back(msg);
    } else if (type == GST_MESSAGE_ERROR || type == GST_MESSAGE_WARNING) {
      GError* err = nullptr;
      if (type == GST_MESSAGE_ERROR) gst_message_parse_error(m, &err, nullptr);
      else gst_message_parse_warning(m, &err, nullptr);
      failures.push_back(std::string(type == GST_MESSAGE_ERROR ? "error: " : "warning: ") + err->message);
      g_clear_error(&err);
    }
    eos = type == GST_MESSAGE_EOS;
    gst_message_unref(m);
    if (eos || type == GST_MESSAGE_ERROR) break;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  guint64 analyzed = 0, dropped = 0;
  g_object_get(soak.filter, "frames-analyzed", &analyzed, "requests-dropped", &dropped, NULL);
  {
    std::lock_guard<std::mutex> guard(soak.lock);
    soak.done = true;
  }
  soak.wake.notify_one();
  app.join();
  // The last label change is rebuilt off the streaming thread: give it time.
  const guint64 last = (opt.frames - 1) / kLabelPeriod * kLabelPeriod;
  std::string active_labels;
  for (int tries = 0; tries < 500 && active_labels != kLabelSets[(last / kLabelPeriod) % 3]; ++tries) {
    if (tries) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    gchar* active = nullptr;
    g_object_get(soak.filter, "active-labels", &active, NULL);
    active_labels = active ? active : "";
    g_free(active);
  }
  gst_element_set_state(pipeline, GST_STATE_NULL);  // the streaming thread is gone from here on

  // Counters.
  const guint64 sampled = (opt.frames + opt.interval - 1) / opt.interval;
  check(eos, "no EOS");
  check(soak.pts.size() == opt.frames,
        "sink saw " + std::to_string(soak.pts.size()) + " buffers, sent " + std::to_string(opt.frames));
  check(analyzed + dropped == sampled, "frames-analyzed " + std::to_string(analyzed) + " + requests-dropped " +
                                           std::to_string(dropped) + " != sampled " + std::to_string(sampled));
  check(analyzed == messages.size(), "frames-analyzed " + std::to_string(analyzed) + " != bus messages " +
                                         std::to_string(messages.size()));
  check(analyzed >= sampled / 20, "fewer than 5% of the sampled frames analyzed");

  // Every analysis reported once, in order, and what the buffers carried is among them.
  std::set<guint64> analyzed_frames;
  std::set<int> sets_seen;
  guint64 set_switches = 0;
  for (size_t k = 0; k < messages.size(); ++k) {
    const Message& m = messages[k];
    const std::string at = "message of frame " + std::to_string(m.frame);
    check(k == 0 || m.frame > messages[k - 1].frame, at + " is not after the previous one (duplicate or out of order)");
    check(m.frame < soak.pts.size() && m.pts == soak.pts[m.frame], at + " has the wrong source-pts");
    check(m.label_set >= 0, at + " is not scored against one whole label set");
    analyzed_frames.insert(m.frame);
    sets_seen.insert(m.label_set);
    set_switches += k > 0 && m.label_set != messages[k - 1].label_set;
  }
  for (guint64 f = 0; f < soak.on_buffers.size(); ++f)
    if (soak.on_buffers[f])
      check(analyzed_frames.count(f), "buffers carried a result of frame " + std::to_string(f) + " never reported");
  check(soak.results_on_buffers > 0 && soak.results_on_buffers <= analyzed, "results on buffers out of range");

  // The label swaps and resolution changes took effect.
  check(sets_seen.size() == 3, "not all three label sets were used");
  check(set_switches >= soak.label_changes / 10,
        "label set switched only " + std::to_string(set_switches) + " times for " +
            std::to_string(soak.label_changes) + " changes");
  check(active_labels == kLabelSets[(last / kLabelPeriod) % 3], "active-labels is not the last set: " + active_labels);
  check(soak.caps_at.size() == soak.caps_changes + 1, std::to_string(soak.caps_at.size()) + " caps at the sink for " +
                                                          std::to_string(soak.caps_changes) + " changes");
  // Every resolution segment got analyses (the element kept working after each renegotiation).
  for (size_t c = 0; c < soak.caps_at.size(); ++c) {
    const guint64 from = soak.caps_at[c], to = c + 1 < soak.caps_at.size() ? soak.caps_at[c + 1] : soak.pts.size();
    check(analyzed_frames.lower_bound(from) != analyzed_frames.lower_bound(to),
          "no analysis in frames " + std::to_string(from) + ".." + std::to_string(to));
  }
  for (const auto& [what, f] : soak.failures)
    failures.push_back(what + ": " + std::to_string(f.first) + " buffers, first at " + std::to_string(f.second));

  // Memory: flat after warm-up. RSS moves with the frame size (buffer pools),
  // and the sizes repeat every kCycle frames: samples a cycle apart differ only
  // by what accumulated.
  const guint64 kCycle = kCapsPeriod * (sizeof kCaps / sizeof kCaps[0]);
  const Soak::Sample* warm = nullptr;
  double peak = 0, cycle_growth = 0, heap_cycle_growth = 0;
  std::string rss_series, heap_series;
  for (const auto& a : soak.rss) {
    char text[32];
    std::snprintf(text, sizeof text, "%s%.1f", rss_series.empty() ? "" : ",", a.rss_mib);
    rss_series += text;
    std::snprintf(text, sizeof text, "%s%.2f", heap_series.empty() ? "" : ",", a.heap_mib);
    heap_series += text;
    if (a.frame == kWarmup) warm = &a;
    if (a.frame >= kWarmup) peak = std::max(peak, a.rss_mib);
    for (const auto& b : soak.rss)
      if (a.frame >= kWarmup && b.frame == a.frame + kCycle) {
        cycle_growth = std::max(cycle_growth, b.rss_mib - a.rss_mib);
        heap_cycle_growth = std::max(heap_cycle_growth, b.heap_mib - a.heap_mib);
      }
  }
  const double growth = warm ? peak - warm->rss_mib : 0;
  if (opt.frames > kWarmup) check(warm, "no RSS sample at frame 5000");
  check(growth < opt.rss_bound_mib, "RSS grew " + std::to_string(growth) + " MiB after frame 5000");
  check(cycle_growth < opt.rss_cycle_bound_mib,
        "RSS grew " + std::to_string(cycle_growth) + " MiB over " + std::to_string(kCycle) + " frames");
  check(heap_cycle_growth < opt.heap_cycle_bound_mib,
        "heap in use grew " + std::to_string(heap_cycle_growth) + " MiB over " + std::to_string(kCycle) + " frames");

  const bool ok = failures.empty();
  std::string fails;
  for (const auto& f : failures) fails += (fails.empty() ? "\"" : ",\"") + json_escape(f) + "\"";
  std::printf(
      "{\"ok\":%s,\"frames\":%lu,\"fps\":%d,\"interval\":%u,\"seconds\":%.1f,\"sink_buffers\":%zu,"
      "\"sampled\":%lu,\"frames_analyzed\":%lu,\"requests_dropped\":%lu,\"bus_messages\":%zu,"
      "\"results_on_buffers\":%lu,\"label_changes\":%lu,\"label_set_switches\":%lu,\"caps_changes\":%lu,"
      "\"rss_mib_5000\":%.1f,\"rss_growth_mib\":%.2f,\"rss_bound_mib\":%.1f,\"rss_growth_per_cycle_mib\":%.2f,"
      "\"rss_cycle_bound_mib\":%.1f,\"heap_growth_per_cycle_mib\":%.2f,\"rss_mib_every_1000\":[%s],"
      "\"heap_mib_every_1000\":[%s],\"failures\":[%s]}\n",
      ok ? "true" : "false", (unsigned long)opt.frames, opt.fps, opt.interval, seconds, soak.pts.size(),
      (unsigned long)sampled, (unsigned long)analyzed, (unsigned long)dropped, messages.size(),
      (unsigned long)soak.results_on_buffers, (unsigned long)soak.label_changes, (unsigned long)set_switches,
      (unsigned long)soak.caps_changes, warm ? warm->rss_mib : -1.0, growth, opt.rss_bound_mib, cycle_growth,
      opt.rss_cycle_bound_mib, heap_cycle_growth, rss_series.c_str(), heap_series.c_str(), fails.c_str());
  for (const auto& f : failures) std::fprintf(stderr, "soak: FAIL: %s\n", f.c_str());

  gst_object_unref(bus);
  gst_object_unref(sink);
  gst_object_unref(soak.capsfilter);
  gst_object_unref(soak.filter);
  gst_object_unref(pipeline);
  return ok ? 0 : 1;
}
