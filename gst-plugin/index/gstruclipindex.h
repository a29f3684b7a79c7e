/* ruclipindex: a pass-through element after ruclipfilter that adds each
 * analysed frame of a live or file stream (its camera, wall-clock time, PTS,
 * embedding, labels and a JPEG thumbnail) to a search index that `ruclip
 * search` and `ruclip serve` read: a SQLite file or a PostgreSQL database
 * shared by many machines. The stream never waits for the database (the
 * writing is ruclip::index::Writer, ruclip/index/writer.h). */
#ifndef GST_RUCLIP_INDEX_H
#define GST_RUCLIP_INDEX_H

#include <gst/base/gstbasetransform.h>

G_BEGIN_DECLS

#define GST_TYPE_RUCLIP_INDEX (gst_ruclip_index_get_type ())
G_DECLARE_FINAL_TYPE (GstRuClipIndex, gst_ruclip_index, GST, RUCLIP_INDEX, GstBaseTransform)

GST_ELEMENT_REGISTER_DECLARE (ruclipindex);

G_END_DECLS

#endif /* GST_RUCLIP_INDEX_H */
