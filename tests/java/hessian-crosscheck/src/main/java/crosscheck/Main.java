package crosscheck;

import com.alibaba.com.caucho.hessian.io.Hessian2Input;
import com.alibaba.com.caucho.hessian.io.Hessian2Output;
import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;

import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * Byte-compatibility cross-check between hessian-lite and causeway-protocols.
 *
 * <pre>
 * generate SEED COUNT FILE   write COUNT random values encoded by hessian-lite, one JSON line each:
 *                            {"d": description, "hex": bytes}; every line is first checked by
 *                            decoding it back with hessian-lite
 * check FILE                 decode every line's bytes (written by the Rust encoder) with
 *                            hessian-lite and compare with its description; exit 1 on any mismatch
 * </pre>
 *
 * Descriptions are tagged JSON ({"t": "int", "v": 1}, ...); see Describe.
 */
public final class Main {
    private static final Gson GSON = new GsonBuilder().disableHtmlEscaping().serializeNulls().create();

    private Main() {}

    public static void main(String[] args) throws Exception {
        if (args.length == 4 && args[0].equals("generate")) {
            System.exit(generate(Long.parseLong(args[1]), Integer.parseInt(args[2]), Path.of(args[3])));
        } else if (args.length == 2 && args[0].equals("check")) {
            System.exit(check(Path.of(args[1])));
        } else {
            System.err.println("usage: generate SEED COUNT FILE | check FILE");
            System.exit(64);
        }
    }

    /** One fresh Hessian2Output per value, as Dubbo uses one per message body. */
    static byte[] encode(Object value) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        Hessian2Output out = new Hessian2Output(bytes);
        out.writeObject(value);
        out.flushBuffer();
        return bytes.toByteArray();
    }

    /** Decodes one value and insists that it used every byte. */
    static Object decode(byte[] bytes) throws IOException {
        Hessian2Input in = new Hessian2Input(new ByteArrayInputStream(bytes));
        Object value = in.readObject();
        if (in.read() != -1) {
            throw new IOException("bytes left over after the value");
        }
        return value;
    }

    private static int generate(long seed, int count, Path file) throws IOException {
        Gen gen = new Gen(seed);
        List<Object> values = gen.values(count);
        int index = 0;
        try (BufferedWriter writer = Files.newBufferedWriter(file, StandardCharsets.UTF_8)) {
            for (Object value : values) {
                byte[] bytes = encode(value);
                JsonElement description = new Describe().describe(value);
                // The description must be exactly what a reader gets back: check with Java first.
                Compare compare = new Compare();
                if (!compare.matches(description, decode(bytes))) {
                    System.err.println("value " + index + ": hessian-lite does not read back its own description: "
                            + compare.failure() + "\n  description: " + abbreviate(description.toString()));
                    return 2;
                }
                JsonObject line = new JsonObject();
                line.add("d", description);
                line.addProperty("hex", Hex.encode(bytes));
                writer.write(GSON.toJson(line));
                writer.write('\n');
                index++;
            }
        }
        System.out.println("generated " + index + " values into " + file);
        return 0;
    }

    private static int check(Path file) throws IOException {
        int passed = 0;
        int failed = 0;
        try (BufferedReader reader = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
            String text;
            int index = 0;
            while ((text = reader.readLine()) != null) {
                if (text.isBlank()) {
                    continue;
                }
                JsonObject line = JsonParser.parseString(text).getAsJsonObject();
                JsonElement description = line.get("d");
                String hex = line.get("hex").getAsString();
                String failure;
                try {
                    Compare compare = new Compare();
                    failure = compare.matches(description, decode(Hex.decode(hex))) ? null : compare.failure();
                } catch (Exception e) {
                    failure = "hessian-lite failed to decode: " + e;
                }
                if (failure == null) {
                    passed++;
                } else {
                    failed++;
                    if (failed <= 20) {
                        System.out.println("FAIL value " + index + ": " + failure
                                + "\n  description: " + abbreviate(description.toString())
                                + "\n  hex: " + abbreviate(hex));
                    }
                }
                index++;
            }
        }
        System.out.println(passed + " passed, " + failed + " failed");
        return failed == 0 && passed > 0 ? 0 : 1;
    }

    static String abbreviate(String s) {
        return s.length() <= 600 ? s : s.substring(0, 600) + "... (" + s.length() + " chars)";
    }

    /** Lowercase hex. */
    static final class Hex {
        private Hex() {}

        static String encode(byte[] bytes) {
            StringBuilder out = new StringBuilder(bytes.length * 2);
            for (byte b : bytes) {
                out.append(Character.forDigit((b >> 4) & 0xF, 16)).append(Character.forDigit(b & 0xF, 16));
            }
            return out.toString();
        }

        static byte[] decode(String hex) {
            byte[] out = new byte[hex.length() / 2];
            for (int i = 0; i < out.length; i++) {
                out[i] = (byte) Integer.parseInt(hex.substring(2 * i, 2 * i + 2), 16);
            }
            return out;
        }
    }

    /** Used by Describe: the field order hessian-lite writes for a class, read from its own class definition. */
    static List<String> fieldOrder(Object sample) throws IOException {
        byte[] bytes = encode(sample);
        // 'C', short string class name, compact int field count, short string field names.
        int pos = 1;
        int nameLength = bytes[pos++];
        pos += nameLength;
        int count = (bytes[pos++] & 0xFF) - 0x90;
        List<String> fields = new java.util.ArrayList<>();
        for (int i = 0; i < count; i++) {
            int length = bytes[pos++];
            fields.add(new String(bytes, pos, length, StandardCharsets.UTF_8));
            pos += length;
        }
        return fields;
    }

    static Map<String, List<String>> knownFieldOrders() throws IOException {
        return Map.of(
                "crosscheck.User", fieldOrder(new User()),
                "crosscheck.Pair", fieldOrder(new Pair()));
    }
}
