// The JSON documents ruclippublish sends (the schema: gstruclippublish.cpp's
// element documentation), made from results read through ruclipmeta.h.
#include "documents.h"

#include <nlohmann/json.hpp>

#include "ruclipmeta.h"

namespace {

using ordered_json = nlohmann::ordered_json;

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

}  // namespace

std::string
analysis_document (const std::string & stream, const GstStructure * r, const GstSegment * segment)
{
  const GstClockTime pts = ruclip_result_source_pts (r);
  const GstClockTime running_time = GST_CLOCK_TIME_IS_VALID (pts) && segment->format == GST_FORMAT_TIME ?
      gst_segment_to_running_time (segment, GST_FORMAT_TIME, pts) : GST_CLOCK_TIME_NONE;
  ordered_json doc = document_head ("analysis", stream, pts, running_time);
  const guint64 frame = ruclip_result_frame (r);
  doc["frame"] = frame == G_MAXUINT64 ? 0 : frame;
  ordered_json labels = ordered_json::array ();
  for (guint i = 0; i < ruclip_result_n_labels (r); ++i) {
    const gchar *label = ruclip_result_label (r, i);
    labels.push_back ({{"label", label ? label : ""}, {"score", ruclip_result_score (r, i)},
            {"cosine", ruclip_result_cosine (r, i)}});
  }
  doc["labels"] = std::move (labels);
  doc["scoring"] = ruclip_result_scoring (r);
  doc["model"] = ruclip_result_model (r);
  return dump (doc);
}

std::string
segment_document (const std::string & stream, const GstStructure * s)
{
  RuClipSegment seg;
  if (!ruclip_segment_parse (s, &seg))
    return "";
  const GstClockTime end_pts = seg.is_start ? GST_CLOCK_TIME_NONE : seg.end_pts;
  ordered_json doc = document_head ("segment", stream, seg.is_start ? seg.start_pts : end_pts,
      seg.is_start ? seg.start_running_time : seg.end_running_time);
  doc["event"] = seg.is_start ? "start" : "end";
  doc["label"] = seg.label;
  doc["start"] = seconds_or_null (seg.start_pts);
  doc["end"] = seconds_or_null (end_pts);
  doc["mean_score"] = seg.mean_score;
  doc["peak_score"] = seg.peak_score;
  doc["scoring"] = seg.scoring;
  doc["frames"] = seg.frames;
  doc["model"] = seg.model;
  return dump (doc);
}
