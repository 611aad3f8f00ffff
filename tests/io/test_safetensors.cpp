// Tests of the safetensors reader and writer: round trips, and a clear error for every corruption.
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "rodimus/io/safetensors.hpp"

namespace fs = std::filesystem;
using namespace rodimus;
using namespace rodimus::io;

namespace {

std::mt19937& rng() {
  static std::mt19937 gen{std::random_device{}()};
  return gen;
}

std::vector<float> random_floats(std::size_t n) {
  std::normal_distribution<float> dist(0.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng());
  return v;
}

template <class T>
std::vector<T> narrow(const std::vector<float>& v) {
  std::vector<T> out;
  for (float x : v) out.push_back(from_f32<T>(x));
  return out;
}

/// An image made of a hand-written header and `data_size` bytes of data.
std::vector<std::byte> make_image(const std::string& header, std::size_t data_size = 64) {
  std::vector<std::byte> out(8 + header.size() + data_size, std::byte{0});
  const std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<std::byte>((n >> (8 * i)) & 0xff);
  std::memcpy(out.data() + 8, header.data(), header.size());
  return out;
}

void set_header_len(std::vector<std::byte>& img, std::uint64_t n) {
  for (int i = 0; i < 8; ++i) img[i] = static_cast<std::byte>((n >> (8 * i)) & 0xff);
}

std::string parse_error(std::span<const std::byte> img) {
  try {
    SafetensorsFile::parse(img, "bad.safetensors");
  } catch (const CheckpointError& e) {
    return e.what();
  }
  FAIL("no CheckpointError was thrown");
  return {};
}

/// A temporary directory removed at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    std::uniform_int_distribution<unsigned long long> d;
    path = fs::temp_directory_path() / ("rodimus_st_" + std::to_string(d(rng())));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

}  // namespace

TEST_CASE("safetensors dtype names, sizes and float mapping", "[io][safetensors]") {
  for (const auto& e : io::detail::st_dtype_table) {
    REQUIRE(parse_st_dtype(e.name) == e.dtype);
    REQUIRE(st_dtype_name(e.dtype) == e.name);
    REQUIRE(st_dtype_size(e.dtype) == e.size);
  }
  CHECK(st_dtype_size(StDType::BF16) == 2);
  CHECK(st_dtype_size(StDType::I64) == 8);
  CHECK_FALSE(parse_st_dtype("F4").has_value());
  CHECK_FALSE(parse_st_dtype("f32").has_value());
  CHECK(as_float_dtype(StDType::F32) == DType::F32);
  CHECK(as_float_dtype(StDType::F16) == DType::F16);
  CHECK(as_float_dtype(StDType::BF16) == DType::BF16);
  CHECK_FALSE(as_float_dtype(StDType::F64).has_value());
  CHECK_FALSE(as_float_dtype(StDType::I64).has_value());
}

TEST_CASE("safetensors round trip F32 / F16 / BF16 / I64 in memory and on disk",
          "[io][safetensors]") {
  const auto f32 = random_floats(6);
  const auto f16 = narrow<fp16>(random_floats(12));
  const auto b16 = narrow<bf16>(random_floats(5));
  std::vector<std::int64_t> i64(7);
  std::uniform_int_distribution<std::int64_t> di(-1'000'000'000'000LL, 1'000'000'000'000LL);
  for (auto& x : i64) x = di(rng());
  const float scalar = random_floats(1)[0];

  const std::vector<TensorWrite> ws = {
      {"w.f32", StDType::F32, {2, 3}, f32.data()}, {"w.f16", StDType::F16, {3, 1, 4}, f16.data()},
      {"a.bf16", StDType::BF16, {5}, b16.data()},  {"ids", StDType::I64, {7}, i64.data()},
      {"scalar", StDType::F32, {}, &scalar},       {"empty", StDType::F32, {0, 4}, nullptr},
  };
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "unit test"}};
  const auto img = serialize_safetensors(ws, meta);

  std::uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= std::to_integer<std::uint64_t>(img[i]) << (8 * i);
  CHECK(n % 8 == 0);

  auto check = [&](const SafetensorsFile& f) {
    REQUIRE(f.tensors().size() == ws.size());
    CHECK(f.metadata() == meta);
    for (const auto& w : ws) {
      const TensorRef* t = f.find(w.name);
      REQUIRE(t != nullptr);
      CHECK(t->name == w.name);
      CHECK(t->dtype == w.dtype);
      CHECK(t->shape == w.shape);
      const auto nbytes = static_cast<std::size_t>(t->numel()) * st_dtype_size(w.dtype);
      REQUIRE(t->bytes.size() == nbytes);
      if (nbytes) CHECK(std::memcmp(t->bytes.data(), w.data, nbytes) == 0);
    }
    CHECK(f.find("scalar")->numel() == 1);
    CHECK(f.find("empty")->numel() == 0);
    CHECK(f.find("missing") == nullptr);
    // sorted by name
    for (std::size_t i = 1; i < f.tensors().size(); ++i)
      CHECK(f.tensors()[i - 1].name < f.tensors()[i].name);
  };

  SECTION("in memory") {
    const auto f = SafetensorsFile::parse(img);
    CHECK(f.source() == "<buffer>");
    check(f);
    // data is laid out in the given order
    CHECK(f.find("w.f32")->bytes.data() < f.find("w.f16")->bytes.data());
    CHECK(f.find("w.f16")->bytes.data() < f.find("a.bf16")->bytes.data());
  }
  SECTION("on disk, memory-mapped, and moved") {
    TempDir dir;
    const auto path = dir.path / "x.safetensors";
    write_safetensors(path, ws, meta);
    REQUIRE(fs::file_size(path) == img.size());
    auto f = SafetensorsFile::open(path);
    CHECK(f.source() == path.string());
    check(f);
    SafetensorsFile g = std::move(f);
    check(g);
    SafetensorsFile h;
    h = std::move(g);
    check(h);
  }
  SECTION("streamed one tensor at a time: the same bytes") {
    TempDir dir;
    const auto path = dir.path / "s.safetensors";
    std::vector<TensorWrite> bare = ws;
    for (auto& w : bare) w.data = nullptr;  // ignored: data_of gives the bytes
    std::vector<std::size_t> asked;
    write_safetensors_streamed(
        path, bare,
        [&](std::size_t i) {
          asked.push_back(i);
          return ws[i].data;
        },
        meta);
    CHECK(asked == std::vector<std::size_t>{0, 1, 2, 3, 4, 5});
    std::ifstream in(path, std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    REQUIRE(bytes.size() == img.size());
    CHECK(std::memcmp(bytes.data(), img.data(), img.size()) == 0);
    check(SafetensorsFile::open(path));
    CHECK_THROWS_AS(write_safetensors_streamed(path, bare, [](std::size_t) { return nullptr; }),
                    CheckpointError);  // non-empty tensor without data
    CHECK_THROWS_AS(write_safetensors_streamed("/nonexistent-dir/x.safetensors", bare,
                                               [&](std::size_t i) { return ws[i].data; }),
                    CheckpointError);
  }
}

TEST_CASE("safetensors reader accepts holes between tensors and unpadded headers",
          "[io][safetensors]") {
  const auto img = make_image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                              R"("b":{"dtype":"U8","shape":[3],"data_offsets":[16,19]},)"
                              R"("z":{"dtype":"BOOL","shape":[0],"data_offsets":[19,19]}})",
                              24);
  const auto f = SafetensorsFile::parse(img);
  CHECK(f.tensors().size() == 3);
  CHECK(f.find("b")->bytes.size() == 3);
  CHECK(f.metadata().empty());
}

TEST_CASE("safetensors reader rejects every kind of corruption", "[io][safetensors]") {
  const auto vals = random_floats(6);
  const std::vector<TensorWrite> ws = {{"t.a", StDType::F32, {2, 3}, vals.data()},
                                       {"t.b", StDType::F32, {3}, vals.data()}};
  const auto good = serialize_safetensors(ws);
  REQUIRE_NOTHROW(SafetensorsFile::parse(good));
  auto hdr = [](const std::string& entry) { return make_image(R"({"t":)" + entry + "}", 24); };

  SECTION("shorter than 8 bytes") {
    for (std::size_t n : {0, 1, 7}) {
      const auto msg = parse_error(std::span(good).first(n));
      CHECK_THAT(msg, Catch::Contains("bad.safetensors"));
      CHECK_THAT(msg, Catch::Contains("shorter than the 8-byte"));
    }
  }
  SECTION("truncated file") {
    // cut inside the data: the last tensor ends beyond the data section
    CHECK_THAT(parse_error(std::span(good).first(good.size() - 1)), Catch::Contains("beyond"));
    // cut inside the header: the header length lies
    CHECK_THAT(parse_error(std::span(good).first(20)), Catch::Contains("exceeds"));
  }
  SECTION("header length lies") {
    auto img = good;
    set_header_len(img, good.size());  // larger than the file
    CHECK_THAT(parse_error(img), Catch::Contains("exceeds"));
    set_header_len(img, 1ull << 62);
    CHECK_THAT(parse_error(img), Catch::Contains("absurd"));
    set_header_len(img, ~0ull);
    CHECK_THAT(parse_error(img), Catch::Contains("absurd"));
    set_header_len(img, 10);  // cuts the JSON short
    CHECK_THAT(parse_error(img), Catch::Contains("not valid JSON"));
  }
  SECTION("header not JSON or not an object") {
    CHECK_THAT(parse_error(make_image("{\"t\": ")), Catch::Contains("not valid JSON"));
    CHECK_THAT(parse_error(make_image("\xff\xfe")), Catch::Contains("not valid JSON"));
    CHECK_THAT(parse_error(make_image("")), Catch::Contains("not valid JSON"));
    CHECK_THAT(
        parse_error(make_image(R"({"t":{"dtype":"F32","shape":[1e400],"data_offsets":[0,4]}})")),
        Catch::Contains("not valid JSON"));
    CHECK_THAT(parse_error(make_image("[1,2]")), Catch::Contains("not a JSON object"));
    CHECK_THAT(parse_error(make_image("null")), Catch::Contains("not a JSON object"));
  }
  SECTION("entry not an object") {
    const auto msg = parse_error(hdr("[1]"));
    CHECK_THAT(msg, Catch::Contains("tensor 't'"));
    CHECK_THAT(msg, Catch::Contains("not an object"));
  }
  SECTION("missing or ill-typed dtype") {
    CHECK_THAT(parse_error(hdr(R"({"shape":[1],"data_offsets":[0,4]})")),
               Catch::Contains("missing 'dtype'"));
    CHECK_THAT(parse_error(hdr(R"({"dtype":5,"shape":[1],"data_offsets":[0,4]})")),
               Catch::Contains("'dtype' is not a string"));
    const auto msg = parse_error(hdr(R"({"dtype":"Q4","shape":[1],"data_offsets":[0,4]})"));
    CHECK_THAT(msg, Catch::Contains("unknown or unsupported dtype 'Q4'"));
    CHECK_THAT(msg, Catch::Contains("tensor 't'"));
  }
  SECTION("missing or bad shape") {
    CHECK_THAT(parse_error(hdr(R"({"dtype":"F32","data_offsets":[0,4]})")),
               Catch::Contains("missing 'shape'"));
    CHECK_THAT(parse_error(hdr(R"({"dtype":"F32","shape":4,"data_offsets":[0,4]})")),
               Catch::Contains("'shape' is not an array"));
    CHECK_THAT(parse_error(hdr(R"({"dtype":"F32","shape":[-1],"data_offsets":[0,4]})")),
               Catch::Contains("not a non-negative integer"));
    CHECK_THAT(parse_error(hdr(R"({"dtype":"F32","shape":[1.5],"data_offsets":[0,4]})")),
               Catch::Contains("not a non-negative integer"));
    CHECK_THAT(parse_error(hdr(R"({"dtype":"F32","shape":["1"],"data_offsets":[0,4]})")),
               Catch::Contains("not a non-negative integer"));
    CHECK_THAT(
        parse_error(hdr(R"({"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,4]})")),
        Catch::Contains("too large"));
  }
  SECTION("element count or byte size overflows") {
    CHECK_THAT(
        parse_error(hdr(R"({"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,4]})")),
        Catch::Contains("overflows"));
    CHECK_THAT(
        parse_error(hdr(R"({"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,4]})")),
        Catch::Contains("overflows"));
    // a zero dimension makes the product 0 even with a huge one beside it
    CHECK_NOTHROW(SafetensorsFile::parse(
        hdr(R"({"dtype":"F32","shape":[0,9223372036854775807],"data_offsets":[0,0]})")));
  }
  SECTION("bad data_offsets") {
    CHECK_THAT(parse_error(hdr(R"({"dtype":"F32","shape":[1]})")),
               Catch::Contains("missing 'data_offsets'"));
    CHECK_THAT(parse_error(hdr(R"({"dtype":"F32","shape":[1],"data_offsets":[0]})")),
               Catch::Contains("not an array of two integers"));
    CHECK_THAT(parse_error(hdr(R"({"dtype":"F32","shape":[1],"data_offsets":{"a":1}})")),
               Catch::Contains("not an array of two integers"));
    CHECK_THAT(parse_error(hdr(R"({"dtype":"F32","shape":[1],"data_offsets":[-4,0]})")),
               Catch::Contains("not two non-negative integers"));
    CHECK_THAT(parse_error(hdr(R"({"dtype":"F32","shape":[1],"data_offsets":[0,4.0]})")),
               Catch::Contains("not two non-negative integers"));
    CHECK_THAT(parse_error(hdr(R"({"dtype":"F32","shape":[1],"data_offsets":[8,4]})")),
               Catch::Contains("begin after they end"));
    CHECK_THAT(parse_error(hdr(R"({"dtype":"F32","shape":[1],"data_offsets":[24,28]})")),
               Catch::Contains("beyond the 24-byte data section"));
    CHECK_THAT(
        parse_error(hdr(R"({"dtype":"F32","shape":[1],"data_offsets":[0,18446744073709551615]})")),
        Catch::Contains("beyond"));
    const auto msg = parse_error(hdr(R"({"dtype":"F32","shape":[2,2],"data_offsets":[0,12]})"));
    CHECK_THAT(msg, Catch::Contains("span 12 bytes, but shape [2, 2] of F32 needs 16"));
    CHECK_THAT(msg, Catch::Contains("tensor 't'"));
  }
  SECTION("offsets lie in a serialized file: wrong size, overlap") {
    // rewrite t.b's offsets inside a valid image, keeping the header length
    auto rewrite = [&](const std::string& from, const std::string& to) {
      auto img = good;
      std::uint64_t n = 0;
      for (int i = 0; i < 8; ++i) n |= std::to_integer<std::uint64_t>(img[i]) << (8 * i);
      std::string text(reinterpret_cast<const char*>(img.data() + 8), n);
      const auto pos = text.find(from);
      REQUIRE(pos != std::string::npos);
      REQUIRE(from.size() == to.size());
      std::memcpy(img.data() + 8 + pos, to.data(), to.size());
      return img;
    };
    CHECK_THAT(parse_error(rewrite("[24,36]", "[24,32]")), Catch::Contains("needs 12"));
    const auto msg = parse_error(rewrite("[24,36]", "[20,32]"));
    CHECK_THAT(msg, Catch::Contains("overlaps"));
    CHECK_THAT(msg, Catch::Contains("'t.a'"));
    CHECK_THAT(msg, Catch::Contains("'t.b'"));
  }
  SECTION("overlap of hand-written entries") {
    CHECK_THAT(parse_error(make_image(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                                      R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})")),
               Catch::Contains("overlaps"));
    CHECK_THAT(parse_error(make_image(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                                      R"("b":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})")),
               Catch::Contains("overlaps"));
    // an empty tensor strictly inside another one
    CHECK_THAT(parse_error(make_image(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                                      R"("b":{"dtype":"F32","shape":[0],"data_offsets":[8,8]}})")),
               Catch::Contains("overlaps"));
  }
  SECTION("__metadata__ must map strings to strings") {
    CHECK_THAT(parse_error(make_image(R"({"__metadata__":[1]})")),
               Catch::Contains("__metadata__ is not an object"));
    CHECK_THAT(parse_error(make_image(R"({"__metadata__":{"format":3}})")),
               Catch::Contains("__metadata__ value of key 'format' is not a string"));
  }
}

TEST_CASE("SafetensorsFile::open names the path on failure", "[io][safetensors]") {
  TempDir dir;
  auto open_error = [](const fs::path& p) {
    try {
      SafetensorsFile::open(p);
    } catch (const CheckpointError& e) {
      return std::string(e.what());
    }
    FAIL("no CheckpointError was thrown");
    return std::string();
  };
  const auto missing = dir.path / "missing.safetensors";
  CHECK_THAT(open_error(missing),
             Catch::Contains(missing.string()) && Catch::Contains("cannot open"));
  CHECK_THAT(open_error(dir.path), Catch::Contains("is a directory"));
  const auto empty = dir.path / "empty.safetensors";
  std::ofstream(empty).close();
  CHECK_THAT(open_error(empty), Catch::Contains(empty.string()) && Catch::Contains("is empty"));
  const auto junk = dir.path / "junk.safetensors";
  std::ofstream(junk) << "abc";
  CHECK_THAT(open_error(junk), Catch::Contains(junk.string()) && Catch::Contains("shorter"));
}

TEST_CASE("serialize_safetensors rejects bad input", "[io][safetensors]") {
  const float x[4] = {1, 2, 3, 4};
  auto ser_error = [](std::vector<TensorWrite> ws) {
    try {
      serialize_safetensors(ws);
    } catch (const CheckpointError& e) {
      return std::string(e.what());
    }
    FAIL("no CheckpointError was thrown");
    return std::string();
  };
  CHECK_THAT(ser_error({{"a", StDType::F32, {1}, x}, {"a", StDType::F32, {1}, x}}),
             Catch::Contains("duplicate"));
  CHECK_THAT(ser_error({{"__metadata__", StDType::F32, {1}, x}}), Catch::Contains("reserved"));
  CHECK_THAT(ser_error({{"a", StDType::F32, {-1}, x}}), Catch::Contains("negative"));
  CHECK_THAT(ser_error({{"a", StDType::F32, {2}, nullptr}}), Catch::Contains("no data"));
  CHECK_THAT(ser_error({{"a", StDType::F32, {1LL << 40, 1LL << 40}, x}}),
             Catch::Contains("too large"));
  CHECK_THROWS_AS(write_safetensors("/nonexistent-dir/x.safetensors",
                                    std::vector<TensorWrite>{{"a", StDType::F32, {1}, x}}),
                  CheckpointError);
}

TEST_CASE("golden expected.safetensors files parse", "[io][safetensors][golden]") {
  const fs::path root = fs::path(RODIMUS_TEST_DATA_DIR) / "golden";
  for (const char* name : {"tiny_rodimus", "tiny_rodimus_plus", "strong_decay_rodimus"}) {
    INFO(name);
    const auto f = SafetensorsFile::open(root / name / "expected.safetensors");
    const TensorRef* ids = f.find("input_ids");
    REQUIRE(ids != nullptr);
    CHECK(ids->dtype == StDType::I64);
    REQUIRE(ids->shape.size() == 2);
    const TensorRef* logits = f.find("logits");
    REQUIRE(logits != nullptr);
    CHECK(logits->dtype == StDType::F32);
    REQUIRE(logits->shape.size() == 3);
    CHECK(logits->shape[0] == ids->shape[0]);
    CHECK(logits->shape[1] == ids->shape[1]);
  }
}
