package crosscheck;

import java.math.BigDecimal;
import java.util.ArrayList;
import java.util.Date;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;

/**
 * A seeded generator of Java values covering what hessian-lite writes differently: every compact
 * int/long/double range and its edges, thousandths doubles, minute and millisecond dates, strings
 * with non-BMP characters and past the 32768-unit chunk size, binaries that cross hessian-lite's
 * 8 KiB buffer, typed arrays, collections, maps, POJOs, enums, BigDecimal, nesting, and the same
 * object written twice (a reference) or inside itself (a cycle).
 */
final class Gen {
    private static final int[] INT_EDGES = {
        0, 1, -1, 47, 48, -16, -17, 2047, 2048, -2048, -2049, 262143, 262144, -262144, -262145,
        Integer.MAX_VALUE, Integer.MIN_VALUE,
    };
    private static final long[] LONG_EDGES = {
        0, 15, 16, -8, -9, 2047, 2048, -2048, -2049, 262143, 262144, -262144, -262145,
        Integer.MAX_VALUE, Integer.MIN_VALUE, Integer.MAX_VALUE + 1L, Integer.MIN_VALUE - 1L,
        Long.MAX_VALUE, Long.MIN_VALUE,
    };
    private static final double[] DOUBLE_EDGES = {
        0.0, -0.0, 1.0, -1.0, 127.0, 128.0, -128.0, -129.0, 32767.0, 32768.0, -32768.0, -32769.0,
        12.25, 0.001, -0.001, 3.14, 0.1, 0.1 + 0.2, 2147483.647, -2147483.648, 2147483.648, 65536.5,
        2147483647.0, 2147483648.0, -2147483648.0, 1e100, -1e-300, Double.MIN_VALUE, Double.MAX_VALUE,
        Double.NaN, Double.POSITIVE_INFINITY, Double.NEGATIVE_INFINITY,
    };
    private static final String[] WORDS = {"", "a", "hello", "é", "中文", "😀", "a😀b", "\u0000", "\uffff", "𝄞 clef"};

    private final Random r;
    /** Containers already written in the current top-level value: candidates for references. */
    private final List<Object> written = new ArrayList<>();

    Gen(long seed) {
        this.r = new Random(seed);
    }

    /** Fixed cases first, then random values. */
    List<Object> values(int count) {
        List<Object> out = new ArrayList<>(fixed());
        while (out.size() < count) {
            written.clear();
            out.add(value(0));
        }
        return out;
    }

    private List<Object> fixed() {
        List<Object> out = new ArrayList<>();
        for (int x : INT_EDGES) {
            out.add(x);
        }
        for (long x : LONG_EDGES) {
            out.add(x);
        }
        for (double x : DOUBLE_EDGES) {
            out.add(x);
        }
        out.add(12.25f);
        out.add(0.1f);
        out.add((short) 300);
        out.add((byte) 7);
        out.add('x');
        out.add(new char[] {'h', 'i'});
        out.add(new Date(60_000));
        out.add(new Date(1_234_567_890_123L));
        out.add(new Date(-60_000));
        out.add(new Date(60_000L * Integer.MAX_VALUE));
        out.add(new Date(60_000L * (Integer.MAX_VALUE + 1L)));
        for (int n : new int[] {0, 31, 32, 1023, 1024, 32767, 32768, 32769, 40000, 65535, 65536, 70000}) {
            out.add("a".repeat(n));
        }
        // A surrogate pair straddling the 32768-unit chunk boundary.
        out.add("a".repeat(32767) + "😀" + "b".repeat(100));
        out.add("😀".repeat(20000));
        for (int n : new int[] {0, 15, 16, 1023, 1024, 8189, 8190, 20000, 70000}) {
            out.add(bytes(n));
        }
        // Binaries after other data: hessian-lite chunks them where its buffer fills.
        out.add(new ArrayList<>(List.of("x".repeat(5000), bytes(5000))));
        out.add(new ArrayList<>(List.of(bytes(8000), bytes(300), bytes(9000))));
        out.add(new int[] {1, 2});
        out.add(new String[] {"a"});
        out.add(new Object[] {1, "a"});
        out.add(new Integer[] {1});
        out.add(new long[] {1, 1L << 40});
        out.add(new ArrayList<>(List.of(0, 1, 2, 3, 4, 5, 6, 7, 8)));
        out.add(new LinkedList<>(List.of(1)));
        User u = new User("a", 1, 2L);
        out.add(u);
        out.add(new ArrayList<>(List.of(u, u)));
        List<Object> self = new ArrayList<>();
        self.add(self);
        out.add(self);
        Pair loop = new Pair("head", null);
        loop.second = loop;
        out.add(loop);
        Map<String, Object> map = new HashMap<>();
        map.put("self", map);
        out.add(map);
        out.add(Color.GREEN);
        out.add(new BigDecimal("1.5"));
        out.add(new TreeMap<>(Map.of("a", 1)));
        out.add(new LinkedHashMap<>(Map.of("k", "v")));
        // Twenty different classes would use the `O` instance form after the first 16.
        List<Object> many = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            many.add(new User("u" + i, i, i));
            many.add(new Pair(i, Color.values()[i]));
            many.add(new BigDecimal(i + ".5"));
        }
        out.add(many);
        return out;
    }

    private byte[] bytes(int n) {
        byte[] b = new byte[n];
        r.nextBytes(b);
        return b;
    }

    private int anInt() {
        return switch (r.nextInt(4)) {
            case 0 -> INT_EDGES[r.nextInt(INT_EDGES.length)];
            case 1 -> r.nextInt(4096) - 2048;
            case 2 -> r.nextInt(600_000) - 300_000;
            default -> r.nextInt();
        };
    }

    private long aLong() {
        return switch (r.nextInt(4)) {
            case 0 -> LONG_EDGES[r.nextInt(LONG_EDGES.length)];
            case 1 -> r.nextInt(600_000) - 300_000;
            case 2 -> r.nextInt();
            default -> r.nextLong();
        };
    }

    private double aDouble() {
        return switch (r.nextInt(4)) {
            case 0 -> DOUBLE_EDGES[r.nextInt(DOUBLE_EDGES.length)];
            case 1 -> 0.001 * r.nextInt();
            case 2 -> r.nextInt(70_000) - 35_000;
            default -> Double.longBitsToDouble(r.nextLong());
        };
    }

    private String aString() {
        return switch (r.nextInt(5)) {
            case 0 -> WORDS[r.nextInt(WORDS.length)];
            case 1 -> {
                StringBuilder s = new StringBuilder();
                int n = r.nextInt(40);
                for (int i = 0; i < n; i++) {
                    int kind = r.nextInt(6);
                    if (kind == 0) {
                        s.appendCodePoint(0x10000 + r.nextInt(0x10FFFF - 0x10000));
                    } else if (kind == 1) {
                        s.append((char) (0x80 + r.nextInt(0x780)));
                    } else if (kind == 2) {
                        s.append((char) (0x800 + r.nextInt(0xD800 - 0x800)));
                    } else {
                        s.append((char) (0x20 + r.nextInt(0x5F)));
                    }
                }
                yield s.toString();
            }
            case 2 -> "x".repeat(r.nextInt(2000));
            case 3 -> "org.apache.dubbo.demo.DemoService";
            default -> Integer.toString(r.nextInt(100000));
        };
    }

    private Object scalarKey() {
        return switch (r.nextInt(3)) {
            case 0 -> anInt();
            case 1 -> aLong();
            default -> aString();
        };
    }

    Object value(int depth) {
        int kinds = depth >= 3 ? 12 : 22;
        int k = r.nextInt(kinds);
        if (k >= 12 && !written.isEmpty() && r.nextInt(6) == 0) {
            // The same object again: hessian-lite writes a reference.
            return written.get(r.nextInt(written.size()));
        }
        Object v = switch (k) {
            case 0 -> null;
            case 1 -> r.nextBoolean();
            case 2 -> anInt();
            case 3 -> aLong();
            case 4 -> aDouble();
            case 5, 6 -> aString();
            case 7 -> new Date(r.nextBoolean() ? 60_000L * r.nextInt() : r.nextLong() >> 20);
            case 8 -> bytes(r.nextInt(4) == 0 ? r.nextInt(12_000) : r.nextInt(40));
            case 9 -> r.nextBoolean() ? (Object) (short) r.nextInt() : (Object) (byte) r.nextInt();
            case 10 -> r.nextBoolean() ? (Object) r.nextFloat() : (Object) (char) ('a' + r.nextInt(26));
            case 11 -> r.nextBoolean() ? Color.values()[r.nextInt(3)] : new BigDecimal(r.nextInt()).movePointLeft(r.nextInt(6));
            case 12, 13 -> {
                List<Object> list = new ArrayList<>();
                int n = r.nextInt(r.nextInt(10) == 0 ? 20 : 5);
                for (int i = 0; i < n; i++) {
                    list.add(value(depth + 1));
                }
                yield list;
            }
            case 14 -> switch (r.nextInt(5)) {
                case 0 -> new int[] {anInt(), anInt(), anInt()};
                case 1 -> new long[] {aLong()};
                case 2 -> new String[] {aString(), null, aString()};
                case 3 -> new Object[] {value(depth + 1), value(depth + 1)};
                default -> new Integer[] {anInt(), null};
            };
            case 15 -> {
                LinkedList<Object> list = new LinkedList<>();
                list.add(value(depth + 1));
                list.add(value(depth + 1));
                yield list;
            }
            case 16, 17 -> {
                Map<Object, Object> map = new HashMap<>();
                int n = r.nextInt(5);
                for (int i = 0; i < n; i++) {
                    map.put(scalarKey(), value(depth + 1));
                }
                yield map;
            }
            case 18 -> {
                Map<String, Object> map = r.nextBoolean() ? new TreeMap<>() : new LinkedHashMap<>();
                int n = r.nextInt(4);
                for (int i = 0; i < n; i++) {
                    map.put(aString(), value(depth + 1));
                }
                yield map;
            }
            case 19 -> new User(r.nextInt(5) == 0 ? null : aString(), anInt(), aLong());
            default -> new Pair(value(depth + 1), value(depth + 1));
        };
        if (v != null && isContainer(v)) {
            written.add(v);
        }
        return v;
    }

    private static boolean isContainer(Object v) {
        return v instanceof List || v instanceof Map || v instanceof User || v instanceof Pair
                || v instanceof Color || v instanceof BigDecimal
                || (v.getClass().isArray() && !(v instanceof byte[]) && !(v instanceof char[]));
    }
}
