package crosscheck;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;

import java.lang.reflect.Array;
import java.math.BigDecimal;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Date;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.LinkedList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Checks a value read by hessian-lite against a description (see Describe). Lists, maps and
 * objects are numbered in the order met, as the reader numbers them, so a "ref" must be the very
 * same Java object as the container with that number.
 */
final class Compare {
    private final List<Object> containers = new ArrayList<>();
    private String failure;

    String failure() {
        return failure;
    }

    boolean matches(JsonElement description, Object actual) {
        return check(description, actual, "$");
    }

    private boolean fail(String path, String why) {
        if (failure == null) {
            failure = path + ": " + why;
        }
        return false;
    }

    private static String kind(Object o) {
        return o == null ? "null" : o.getClass().getName();
    }

    private boolean check(JsonElement description, Object a, String path) {
        JsonObject d = description.getAsJsonObject();
        String t = d.get("t").getAsString();
        switch (t) {
            case "null":
                return a == null || fail(path, "expected null, got " + kind(a));
            case "bool":
                return (a instanceof Boolean b && b == d.get("v").getAsBoolean())
                        || fail(path, "expected bool " + d.get("v") + ", got " + kind(a) + " " + a);
            case "int":
                return (a instanceof Integer i && i == d.get("v").getAsInt())
                        || fail(path, "expected int " + d.get("v") + ", got " + kind(a) + " " + a);
            case "long":
                return (a instanceof Long l && l == d.get("v").getAsLong())
                        || fail(path, "expected long " + d.get("v") + ", got " + kind(a) + " " + a);
            case "double": {
                long bits = Long.parseUnsignedLong(d.get("bits").getAsString(), 16);
                return (a instanceof Double x && Double.doubleToLongBits(x) == bits)
                        || fail(path, "expected double " + Double.longBitsToDouble(bits) + ", got " + kind(a) + " " + a);
            }
            case "date":
                return (a instanceof Date x && x.getTime() == d.get("v").getAsLong())
                        || fail(path, "expected date " + d.get("v") + ", got " + kind(a) + " " + a);
            case "string": {
                String want = d.get("v").getAsString();
                return (a instanceof String s && s.equals(want))
                        || fail(path, "expected string of " + want.length() + " chars, got " + kind(a)
                                + (a instanceof String s ? " of " + s.length() + " chars, first difference at "
                                        + firstDifference(s, want) : ""));
            }
            case "binary":
                return (a instanceof byte[] b && Arrays.equals(b, Main.Hex.decode(d.get("v").getAsString())))
                        || fail(path, "expected binary, got " + kind(a));
            case "ref": {
                int index = d.get("v").getAsInt();
                if (index >= containers.size()) {
                    return fail(path, "reference " + index + " but only " + containers.size() + " containers seen");
                }
                return containers.get(index) == a
                        || fail(path, "reference " + index + " is not the same object (" + kind(a) + ")");
            }
            case "list":
                containers.add(a);
                return checkList(d, a, path);
            case "map":
                containers.add(a);
                return checkMap(d, a, path);
            case "object":
                containers.add(a);
                return checkObject(d, a, path);
            default:
                return fail(path, "unknown description tag " + t);
        }
    }

    private static int firstDifference(String a, String b) {
        int n = Math.min(a.length(), b.length());
        for (int i = 0; i < n; i++) {
            if (a.charAt(i) != b.charAt(i)) {
                return i;
            }
        }
        return n;
    }

    private boolean checkList(JsonObject d, Object a, String path) {
        String type = d.get("type").isJsonNull() ? null : d.get("type").getAsString();
        JsonArray items = d.getAsJsonArray("v");
        List<Object> actual = new ArrayList<>();
        if (type == null) {
            if (!(a instanceof ArrayList<?> l)) {
                return fail(path, "expected ArrayList, got " + kind(a));
            }
            actual.addAll(l);
        } else if (type.equals("java.util.LinkedList")) {
            if (!(a instanceof LinkedList<?> l)) {
                return fail(path, "expected LinkedList, got " + kind(a));
            }
            actual.addAll(l);
        } else if (type.startsWith("[")) {
            Class<?> want = switch (type) {
                case "[int" -> int[].class;
                case "[long" -> long[].class;
                case "[string" -> String[].class;
                case "[object" -> Object[].class;
                case "[java.lang.Integer" -> Integer[].class;
                default -> null;
            };
            if (want == null || a == null || a.getClass() != want) {
                return fail(path, "expected " + type + " array, got " + kind(a));
            }
            for (int i = 0; i < Array.getLength(a); i++) {
                actual.add(Array.get(a, i));
            }
        } else if (a instanceof Collection<?> c) {
            actual.addAll(c);
        } else {
            return fail(path, "expected a " + type + " collection, got " + kind(a));
        }
        if (actual.size() != items.size()) {
            return fail(path, "expected " + items.size() + " elements, got " + actual.size());
        }
        for (int i = 0; i < items.size(); i++) {
            if (!check(items.get(i), actual.get(i), path + "[" + i + "]")) {
                return false;
            }
        }
        return true;
    }

    private boolean checkMap(JsonObject d, Object a, String path) {
        String type = d.get("type").isJsonNull() ? null : d.get("type").getAsString();
        Class<?> want = type == null ? HashMap.class : switch (type) {
            case "java.util.TreeMap" -> TreeMap.class;
            case "java.util.LinkedHashMap" -> LinkedHashMap.class;
            default -> null;
        };
        if (want == null || a == null || a.getClass() != want) {
            return fail(path, "expected map " + type + ", got " + kind(a));
        }
        Map<?, ?> map = (Map<?, ?>) a;
        JsonArray entries = d.getAsJsonArray("v");
        if (map.size() != entries.size()) {
            return fail(path, "expected " + entries.size() + " entries, got " + map.size());
        }
        Iterator<? extends Map.Entry<?, ?>> order = map.entrySet().iterator();
        for (int i = 0; i < entries.size(); i++) {
            JsonArray entry = entries.get(i).getAsJsonArray();
            Object key = scalar(entry.get(0).getAsJsonObject());
            Map.Entry<?, ?> next = order.next();
            if (want == LinkedHashMap.class && !java.util.Objects.equals(next.getKey(), key)) {
                return fail(path, "entry " + i + ": expected key " + key + " in order, got " + next.getKey());
            }
            if (!map.containsKey(key)) {
                return fail(path, "missing key " + key);
            }
            if (!check(entry.get(0), key, path + ".key" + i) || !check(entry.get(1), map.get(key), path + "{" + key + "}")) {
                return false;
            }
        }
        return true;
    }

    /** A map key: keys are always scalars in this corpus. */
    private static Object scalar(JsonObject d) {
        return switch (d.get("t").getAsString()) {
            case "null" -> null;
            case "int" -> d.get("v").getAsInt();
            case "long" -> d.get("v").getAsLong();
            case "string" -> d.get("v").getAsString();
            case "bool" -> d.get("v").getAsBoolean();
            case "date" -> new Date(d.get("v").getAsLong());
            case "double" -> Double.longBitsToDouble(Long.parseUnsignedLong(d.get("bits").getAsString(), 16));
            default -> throw new IllegalArgumentException("map key is not a scalar: " + d);
        };
    }

    private boolean checkObject(JsonObject d, Object a, String path) {
        String className = d.get("class").getAsString();
        for (JsonElement f : d.getAsJsonArray("fields")) {
            JsonArray field = f.getAsJsonArray();
            String name = field.get(0).getAsString();
            Object value;
            switch (className) {
                case "crosscheck.User" -> {
                    if (!(a instanceof User u)) {
                        return fail(path, "expected User, got " + kind(a));
                    }
                    value = switch (name) {
                        case "name" -> u.name;
                        case "age" -> u.age;
                        case "id" -> u.id;
                        default -> throw new IllegalArgumentException("User has no field " + name);
                    };
                }
                case "crosscheck.Pair" -> {
                    if (!(a instanceof Pair p)) {
                        return fail(path, "expected Pair, got " + kind(a));
                    }
                    value = switch (name) {
                        case "first" -> p.first;
                        case "second" -> p.second;
                        default -> throw new IllegalArgumentException("Pair has no field " + name);
                    };
                }
                case "crosscheck.Color" -> {
                    if (!(a instanceof Color c)) {
                        return fail(path, "expected Color, got " + kind(a));
                    }
                    value = c.name();
                }
                case "java.math.BigDecimal" -> {
                    if (!(a instanceof BigDecimal b)) {
                        return fail(path, "expected BigDecimal, got " + kind(a));
                    }
                    value = b.toString();
                }
                default -> {
                    return fail(path, "unknown class " + className);
                }
            }
            if (!check(field.get(1), value, path + "." + name)) {
                return false;
            }
        }
        return true;
    }
}
