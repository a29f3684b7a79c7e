/* rtsp_server: many cameras, one model. An RTSP server whose streams are all
 * labelled by ruclipfilter on the same loaded model.
 *
 *   rtsp_server --model DIR --labels "красный фон;синий фон" [--streams N]
 *       [--port N] [--mode sync|async] [--interval N]
 *
 * It serves N mounts, rtsp://127.0.0.1:PORT/stream0 .. streamN-1, on
 * gst-rtsp-server. Stream i stands in for camera i: a live videotestsrc
 * showing one solid colour (red, blue, green, black, white, yellow, orange,
 * violet, then round again), 160x120 at 10 fps, through ruclipfilter and sent
 * as RTP/JPEG. What it shows:
 *
 *  - every ruclipfilter in a process shares one loaded model (the element's
 *    default): N streams cost one model in memory, and the number each
 *    element's `stats` reports as "model-instance" is the same on all of them;
 *  - a shared media factory per mount, so however many clients watch a
 *    stream, its frames are analyzed once;
 *  - reading the labels in the server itself, with a buffer probe on the
 *    element's src pad: one line on stdout per new result,
 *
 *      stream2 frame 15: зелёный фон 0.998 (model instance 1)
 *
 * A mount's pipeline (and its analysis) runs only while a client watches it.
 * Watch one with
 *
 *   gst-launch-1.0 rtspsrc location=rtsp://127.0.0.1:8554/stream0 ! \
 *       rtpjpegdepay ! jpegdec ! autovideosink
 *
 * It listens on 127.0.0.1 only and sends RTP over the RTSP connection (TCP)
 * only, so it opens no other port. --port 0 takes a free port (the
 * "listening" lines say which). SIGINT or SIGTERM stops it cleanly.
 */
#include <glib-unix.h>
#include <gst/gst.h>
#include <gst/rtsp-server/rtsp-server.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ruclipmeta.h"

/* videotestsrc's foreground-color is ARGB. Full-strength primaries, as the
 * shipped model's own tests feed it; orange and violet are the shipped
 * model's picture colours (tools/lib/src/synthetic.cpp). */
static const struct
{
  const gchar *name;
  guint32 argb;
} colours[] = {
  {"red", 0xffff0000}, {"blue", 0xff0000ff}, {"green", 0xff00ff00},
  {"black", 0xff000000}, {"white", 0xffffffff}, {"yellow", 0xffffff00},
  {"orange", 0xfff08214}, {"violet", 0xff8c32be},
};

typedef struct
{
  const gchar *model;
  const gchar *labels;
  /* Every media made so far, to stop their pipelines before exit: the
   * element's worker and LibTorch's threads must be gone before the
   * process's static destructors run. Media are made on the server's
   * client thread, so this is locked. */
  GMutex lock;
  GPtrArray *media;
} Server;

/* One per mount's pipeline: the probe prints only results it hasn't printed. */
typedef struct
{
  guint stream;
  guint64 last_frame;
} StreamProbe;

static guint64
model_instance (GstElement * rc)
{
  GstStructure *stats = NULL;
  guint64 instance = 0;

  g_object_get (rc, "stats", &stats, NULL);
  if (stats) {
    /* 0: not reported (an element older than the field). */
    if (!gst_structure_get_uint64 (stats, "model-instance", &instance))
      instance = 0;
    gst_structure_free (stats);
  }
  return instance;
}

static GstPadProbeReturn
on_buffer (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  StreamProbe *probe = user_data;
  const GstStructure *result = ruclip_buffer_get_result (GST_PAD_PROBE_INFO_BUFFER (info));
  const guint64 frame = result ? ruclip_result_frame (result) : G_MAXUINT64;

  if (frame == G_MAXUINT64)
    return GST_PAD_PROBE_OK;
  /* A result stays on every later buffer until the next one. In sync mode a
   * new one is on its own (fresh) frame; in async mode it rides on a later
   * buffer and is never fresh. Its analyzed frame's index tells it apart
   * either way. */
  if (frame == probe->last_frame)
    return GST_PAD_PROBE_OK;
  probe->last_frame = frame;

  GstElement *rc = gst_pad_get_parent_element (pad);
  const guint64 instance = rc ? model_instance (rc) : 0;
  if (rc)
    gst_object_unref (rc);
  /* Each mount's pipeline has its own streaming thread: one locked write
   * and flush per line keeps the lines whole and readable as they come. */
  flockfile (stdout);
  printf ("stream%u frame %" G_GUINT64_FORMAT ": %s %.3f (model instance %" G_GUINT64_FORMAT ")\n",
      probe->stream, frame, ruclip_result_n_labels (result) ? ruclip_result_label (result, 0) : "-",
      ruclip_result_score (result, 0), instance);
  fflush (stdout);
  funlockfile (stdout);
  return GST_PAD_PROBE_OK;
}

/* A mount's pipeline is made (its first client asked for it): set the model
 * and labels, and watch the results. The properties are set here rather than
 * in the launch line so that any folder name or label text goes through
 * unquoted; media-configure comes before the pipeline leaves NULL, when
 * `model` may still change. */
static void
on_media_configure (GstRTSPMediaFactory * factory, GstRTSPMedia * media, gpointer user_data)
{
  Server *server = user_data;
  const guint stream = GPOINTER_TO_UINT (g_object_get_data (G_OBJECT (factory), "stream"));
  GstElement *element = gst_rtsp_media_get_element (media);
  GstElement *rc = gst_bin_get_by_name (GST_BIN (element), "rc");

  if (rc) {
    g_object_set (rc, "model", server->model, "labels", server->labels, NULL);
    GstPad *src = gst_element_get_static_pad (rc, "src");
    StreamProbe *probe = g_new0 (StreamProbe, 1);
    probe->stream = stream;
    probe->last_frame = G_MAXUINT64;
    gst_pad_add_probe (src, GST_PAD_PROBE_TYPE_BUFFER, on_buffer, probe, g_free);
    gst_object_unref (src);
    gst_object_unref (rc);
  }
  gst_object_unref (element);

  g_mutex_lock (&server->lock);
  /* Drop the media that have already stopped (their clients left), so that
   * the list doesn't grow with every reconnection. */
  for (guint i = server->media->len; i-- > 0;)
    if (gst_rtsp_media_get_status (g_ptr_array_index (server->media, i)) == GST_RTSP_MEDIA_STATUS_UNPREPARED)
      g_ptr_array_remove_index_fast (server->media, i);
  g_ptr_array_add (server->media, g_object_ref (media));
  g_mutex_unlock (&server->lock);
}

static gboolean
on_signal (gpointer user_data)
{
  g_main_loop_quit (user_data);
  return G_SOURCE_REMOVE;
}

static GstRTSPFilterResult
remove_client (G_GNUC_UNUSED GstRTSPServer * server, G_GNUC_UNUSED GstRTSPClient * client,
    G_GNUC_UNUSED gpointer user_data)
{
  return GST_RTSP_FILTER_REMOVE;
}

static GstRTSPFilterResult
remove_session (G_GNUC_UNUSED GstRTSPSessionPool * pool, G_GNUC_UNUSED GstRTSPSession * session,
    G_GNUC_UNUSED gpointer user_data)
{
  return GST_RTSP_FILTER_REMOVE;
}

int
main (int argc, char **argv)
{
  gchar *model = NULL, *labels = NULL, *mode = NULL;
  gint port = 8554, streams = 4, interval = 5;
  GOptionEntry entries[] = {
    {"model", 0, 0, G_OPTION_ARG_FILENAME, &model, "ruCLIP model folder", "DIR"},
    /* FILENAME: the bytes as given. STRING would convert them from the
     * locale's charset, and fails on Russian text under LANG=C. */
    {"labels", 0, 0, G_OPTION_ARG_FILENAME, &labels, "Labels (UTF-8), ';'-separated", "\"A;B;C\""},
    {"port", 0, 0, G_OPTION_ARG_INT, &port, "TCP port on 127.0.0.1 (0: any free one; default 8554)", "N"},
    {"streams", 0, 0, G_OPTION_ARG_INT, &streams, "Number of mounts, /stream0 ... (default 4)", "N"},
    {"mode", 0, 0, G_OPTION_ARG_STRING, &mode, "ruclipfilter mode: sync or async (default async)", "MODE"},
    {"interval", 0, 0, G_OPTION_ARG_INT, &interval, "Analyze every Nth frame (default 5: twice a second)", "N"},
    {NULL}
  };
  GOptionContext *ctx = g_option_context_new ("- an RTSP server labelling its streams with ruCLIP");
  GError *error = NULL;

  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  if (!g_option_context_parse (ctx, &argc, &argv, &error)) {
    fprintf (stderr, "%s\n", error->message);
    return 2;
  }
  g_option_context_free (ctx);
  if (!mode)
    mode = g_strdup ("async");
  if (!model || !labels || !g_utf8_validate (labels, -1, NULL) || port < 0 || port > 65535 || streams < 1 || interval < 1
      || (strcmp (mode, "sync") != 0 && strcmp (mode, "async") != 0)) {
    fprintf (stderr, "usage: %s --model DIR --labels \"A;B;C\" [--port N] [--streams N] [--mode sync|async] "
        "[--interval N]\n", argv[0]);
    return 2;
  }
  /* A pipeline is only made when a client connects: say now, not then,
   * that the model isn't there. */
  if (!g_file_test (model, G_FILE_TEST_IS_DIR)) {
    fprintf (stderr, "no model folder %s\n", model);
    return 1;
  }

  Server state = { .model = model, .labels = labels };
  g_mutex_init (&state.lock);
  state.media = g_ptr_array_new_with_free_func (g_object_unref);

  GMainLoop *loop = g_main_loop_new (NULL, FALSE);
  GstRTSPServer *server = gst_rtsp_server_new ();
  gchar *service = g_strdup_printf ("%d", port);
  gst_rtsp_server_set_address (server, "127.0.0.1");
  gst_rtsp_server_set_service (server, service);
  g_free (service);

  GstRTSPMountPoints *mounts = gst_rtsp_server_get_mount_points (server);
  for (gint i = 0; i < streams; i++) {
    GstRTSPMediaFactory *factory = gst_rtsp_media_factory_new ();
    /* is-live: frames come at the camera's pace, as they would from a camera,
     * not as fast as the model can take them. */
    gchar *launch = g_strdup_printf ("( videotestsrc is-live=true pattern=solid-color foreground-color=0x%08x ! "
        "video/x-raw,format=I420,width=160,height=120,framerate=10/1 ! "
        "ruclipfilter name=rc interval=%d mode=%s ! jpegenc ! rtpjpegpay name=pay0 pt=96 )",
        colours[i % G_N_ELEMENTS (colours)].argb, interval, mode);
    gchar *path = g_strdup_printf ("/stream%d", i);

    gst_rtsp_media_factory_set_launch (factory, launch);
    /* One pipeline per mount, whatever the number of clients. */
    gst_rtsp_media_factory_set_shared (factory, TRUE);
    /* RTP inside the RTSP connection: no UDP ports, nothing beyond 127.0.0.1. */
    gst_rtsp_media_factory_set_protocols (factory, GST_RTSP_LOWER_TRANS_TCP);
    g_object_set_data (G_OBJECT (factory), "stream", GUINT_TO_POINTER (i));
    g_signal_connect (factory, "media-configure", G_CALLBACK (on_media_configure), &state);
    gst_rtsp_mount_points_add_factory (mounts, path, factory);
    g_free (launch);
    g_free (path);
  }
  g_object_unref (mounts);

  const guint source = gst_rtsp_server_attach (server, NULL);
  if (!source) {
    fprintf (stderr, "cannot listen on 127.0.0.1:%d\n", port);
    return 1;
  }
  /* With --port 0 the system picked the port: print the one bound. */
  for (gint i = 0; i < streams; i++)
    printf ("listening on rtsp://127.0.0.1:%d/stream%d (%s)\n", gst_rtsp_server_get_bound_port (server), i,
        colours[i % G_N_ELEMENTS (colours)].name);
  fflush (stdout);

  g_unix_signal_add (SIGINT, on_signal, loop);
  g_unix_signal_add (SIGTERM, on_signal, loop);
  g_main_loop_run (loop);

  /* Stop accepting, drop the clients and their sessions: a session's media
   * is unprepared (its pipeline set to NULL) when its last session goes.
   * Then unprepare whatever is still prepared, so that no pipeline runs
   * while the process exits; on a stopped one it's a no-op. */
  g_source_remove (source);
  gst_rtsp_server_client_filter (server, remove_client, NULL);
  GstRTSPSessionPool *pool = gst_rtsp_server_get_session_pool (server);
  gst_rtsp_session_pool_filter (pool, remove_session, NULL);
  g_object_unref (pool);
  g_mutex_lock (&state.lock);
  GPtrArray *media = state.media;
  state.media = g_ptr_array_new_with_free_func (g_object_unref);
  g_mutex_unlock (&state.lock);
  for (guint i = 0; i < media->len; i++)
    gst_rtsp_media_unprepare (g_ptr_array_index (media, i));
  g_ptr_array_free (media, TRUE);
  g_object_unref (server);
  g_main_loop_unref (loop);
  g_ptr_array_free (state.media, TRUE);
  g_mutex_clear (&state.lock);
  g_free (model);
  g_free (labels);
  g_free (mode);
  return 0;
}
