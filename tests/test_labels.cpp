#include <gtest/gtest.h>

#include "ruclip/error.h"
#include "ruclip/labels.h"
#include "test_util.h"

using ruclip::parse_labels_file;
using ruclip::split_list;
using Strings = std::vector<std::string>;

TEST(Labels, SplitList) {
  EXPECT_EQ(split_list("кошка;собака"), (Strings{"кошка", "собака"}));
  EXPECT_EQ(split_list("  кошка ;; собака с мячом ;\t"), (Strings{"кошка", "собака с мячом"}));
  EXPECT_EQ(split_list(""), Strings{});
  EXPECT_EQ(split_list(";;;"), Strings{});
  EXPECT_EQ(split_list("a,b", ','), (Strings{"a", "b"}));
}

TEST(Labels, LabelsFileSkipsCommentsAndBlankLines) {
  EXPECT_EQ(parse_labels_file("# животные\r\nкошка\r\n\n  собака  \n#\nгрузовик", "f"),
            (Strings{"кошка", "собака", "грузовик"}));
  EXPECT_EQ(parse_labels_file("", "f"), Strings{});
  EXPECT_EQ(parse_labels_file("# только комментарий\n", "f"), Strings{});
}

TEST(Labels, LabelsFileErrors) {
  try {
    parse_labels_file("кошка\n\xff\xfe\n", "labels.txt");
    FAIL();
  } catch (const ruclip::Error& e) {
    EXPECT_NE(std::string(e.what()).find("labels.txt: line 2:"), std::string::npos) << e.what();
  }
  try {
    ruclip::read_labels_file("/nonexistent/labels.txt");
    FAIL();
  } catch (const ruclip::Error& e) {
    EXPECT_STREQ(e.what(), "labels-file '/nonexistent/labels.txt': cannot open");
  }
  const std::string dir = ruclip_test::make_temp_dir();
  ruclip_test::write_file(dir + "/l.txt", "кошка\nсобака\n");
  EXPECT_EQ(ruclip::read_labels_file(dir + "/l.txt"), (Strings{"кошка", "собака"}));
}
