/* read_labels: a C application reading ruclipfilter's labels from buffers.
 *
 *   read_labels MODEL_DIR "кошка;собака;машина" [VIDEO_FILE | "SOURCE ! ..."] [INTERVAL]
 *
 * The source is a video file, or a gst-launch description of raw video
 * (anything with a '!'); without one it labels 60 frames of videotestsrc. Each buffer that
 * that was analyzed prints its running time, frame index, and the three best
 * labels with their probabilities (later buffers carry the same result until
 * the next one).
 */
#include <gst/app/gstappsink.h>
#include <gst/gst.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ruclipmeta.h"

int
main (int argc, char **argv)
{
  if (argc < 3) {
    fprintf (stderr, "usage: %s MODEL_DIR LABELS [VIDEO_FILE | \"SOURCE ! ...\"] [INTERVAL]\n", argv[0]);
    return 2;
  }
  gst_init (&argc, &argv);

  gchar *source;
  if (argc <= 3)
    source = g_strdup ("videotestsrc num-buffers=60 pattern=ball ! videoconvert");
  else if (strchr (argv[3], '!'))
    source = g_strdup_printf ("%s ! videoconvert", argv[3]);
  else
    source = g_strdup_printf ("filesrc location=\"%s\" ! decodebin ! videoconvert", argv[3]);
  const int interval = argc > 4 ? atoi (argv[4]) : 10;
  gchar *desc = g_strdup_printf ("%s ! ruclipfilter model=\"%s\" labels=\"%s\" interval=%d top-k=3 ! "
      "appsink name=sink sync=false", source, argv[1], argv[2], interval > 0 ? interval : 1);
  GError *error = NULL;
  GstElement *pipeline = gst_parse_launch (desc, &error);
  g_free (source);
  g_free (desc);
  if (!pipeline) {
    fprintf (stderr, "pipeline: %s\n", error->message);
    g_clear_error (&error);
    return 1;
  }

  GstElement *sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  GstBus *bus = gst_element_get_bus (pipeline);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  GstSample *sample;
  GstMessage *msg = NULL;
  for (;;) {
    /* An error (bad model, no labels, unreadable file) ends the stream without
     * EOS, so look at the bus between pulls. */
    if ((msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR)))
      break;
    if (!(sample = gst_app_sink_try_pull_sample (GST_APP_SINK (sink), GST_SECOND / 10))) {
      if (gst_app_sink_is_eos (GST_APP_SINK (sink)))
        break;
      continue;
    }
    GstBuffer *buffer = gst_sample_get_buffer (sample);
    const GstStructure *result = ruclip_buffer_get_result (buffer);
    if (result && ruclip_result_is_fresh (result)) {
      const guint64 frame = ruclip_result_frame (result);
      /* Running time: keeps counting across the segments of a concatenated source. */
      const GstClockTime t = gst_segment_to_running_time (gst_sample_get_segment (sample), GST_FORMAT_TIME,
          GST_BUFFER_PTS (buffer));
      printf ("%" GST_TIME_FORMAT "  frame %3" G_GUINT64_FORMAT ":", GST_TIME_ARGS (t), frame);
      for (guint i = 0; i < ruclip_result_n_labels (result); i++)
        printf ("  %s %.3f", ruclip_result_label (result, i), ruclip_result_score (result, i));
      printf ("\n");
    }
    gst_sample_unref (sample);
  }

  int status = 0;
  if (msg) {
    GError *err = NULL;
    gst_message_parse_error (msg, &err, NULL);
    fprintf (stderr, "error: %s\n", err->message);
    g_clear_error (&err);
    gst_message_unref (msg);
    status = 1;
  }
  gst_object_unref (bus);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (sink);
  gst_object_unref (pipeline);
  return status;
}
