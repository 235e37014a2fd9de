package crosscheck;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.math.BigDecimal;
import java.util.ArrayList;
import java.util.Date;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.LinkedList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Describes a Java value as the Hessian value hessian-lite writes for it, in tagged JSON:
 *
 * <pre>
 * {"t":"null"}  {"t":"bool","v":true}  {"t":"int","v":1}  {"t":"long","v":1}
 * {"t":"double","bits":"3ff0000000000000"}  {"t":"date","v":60000}  {"t":"string","v":"s"}
 * {"t":"binary","v":"0102"}  {"t":"list","type":null|"[int",...,"variable":false,"v":[...]}
 * {"t":"map","type":null|"java.util.TreeMap",...,"v":[[key,value],...]}
 * {"t":"object","class":"crosscheck.User","fields":[["name",value],...]}  {"t":"ref","v":0}
 * </pre>
 *
 * Lists, maps and objects are numbered in the order they are written (pre-order, fields in
 * hessian-lite's field order); a value met again becomes a "ref" to its number, as on the wire.
 */
final class Describe {
    private static final Map<String, List<String>> FIELD_ORDERS;

    static {
        try {
            FIELD_ORDERS = Main.knownFieldOrders();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private final IdentityHashMap<Object, Integer> refs = new IdentityHashMap<>();

    JsonElement describe(Object o) {
        if (o == null) {
            return tag("null");
        }
        if (o instanceof Boolean b) {
            JsonObject d = tag("bool");
            d.addProperty("v", b);
            return d;
        }
        if (o instanceof Integer || o instanceof Short || o instanceof Byte) {
            JsonObject d = tag("int");
            d.addProperty("v", ((Number) o).intValue());
            return d;
        }
        if (o instanceof Long l) {
            JsonObject d = tag("long");
            d.addProperty("v", l);
            return d;
        }
        if (o instanceof Double x) {
            return dbl(x);
        }
        if (o instanceof Float f) {
            // hessian-lite widens a float through its decimal string.
            return dbl(Double.parseDouble(String.valueOf(f)));
        }
        if (o instanceof String || o instanceof Character) {
            return str(String.valueOf(o));
        }
        if (o instanceof char[] chars) {
            return str(new String(chars));
        }
        if (o instanceof Date date) {
            JsonObject d = tag("date");
            d.addProperty("v", date.getTime());
            return d;
        }
        if (o instanceof byte[] bytes) {
            JsonObject d = tag("binary");
            d.addProperty("v", Main.Hex.encode(bytes));
            return d;
        }
        Integer seen = refs.get(o);
        if (seen != null) {
            JsonObject d = tag("ref");
            d.addProperty("v", seen);
            return d;
        }
        refs.put(o, refs.size());
        if (o instanceof int[] a) {
            JsonArray items = new JsonArray();
            for (int x : a) {
                items.add(describe(x));
            }
            return list("[int", items);
        }
        if (o instanceof long[] a) {
            JsonArray items = new JsonArray();
            for (long x : a) {
                items.add(describe(x));
            }
            return list("[long", items);
        }
        if (o instanceof Object[] a) {
            String type;
            if (a.getClass() == String[].class) {
                type = "[string";
            } else if (a.getClass() == Object[].class) {
                type = "[object";
            } else {
                type = "[" + a.getClass().getComponentType().getName();
            }
            JsonArray items = new JsonArray();
            for (Object x : a) {
                items.add(describe(x));
            }
            return list(type, items);
        }
        if (o.getClass() == ArrayList.class || o.getClass() == LinkedList.class) {
            JsonArray items = new JsonArray();
            for (Object x : (List<?>) o) {
                items.add(describe(x));
            }
            return list(o.getClass() == ArrayList.class ? null : "java.util.LinkedList", items);
        }
        if (o.getClass() == HashMap.class || o.getClass() == TreeMap.class || o.getClass() == LinkedHashMap.class) {
            JsonArray entries = new JsonArray();
            for (Map.Entry<?, ?> e : ((Map<?, ?>) o).entrySet()) {
                JsonArray entry = new JsonArray();
                entry.add(describe(e.getKey()));
                entry.add(describe(e.getValue()));
                entries.add(entry);
            }
            JsonObject d = tag("map");
            d.addProperty("type", o.getClass() == HashMap.class ? null : o.getClass().getName());
            d.add("v", entries);
            return d;
        }
        if (o instanceof User u) {
            Map<String, Object> fields = Map.of("name", nullable(u.name), "age", u.age, "id", u.id);
            return object("crosscheck.User", FIELD_ORDERS.get("crosscheck.User"), fields);
        }
        if (o instanceof Pair p) {
            Map<String, Object> fields = Map.of("first", nullable(p.first), "second", nullable(p.second));
            return object("crosscheck.Pair", FIELD_ORDERS.get("crosscheck.Pair"), fields);
        }
        if (o instanceof Color c) {
            return object("crosscheck.Color", List.of("name"), Map.of("name", c.name()));
        }
        if (o instanceof BigDecimal b) {
            return object("java.math.BigDecimal", List.of("value"), Map.of("value", b.toString()));
        }
        throw new IllegalArgumentException("cannot describe " + o.getClass());
    }

    /** Map.of refuses nulls; NULL stands for one. */
    private static final Object NULL = new Object();

    private static Object nullable(Object o) {
        return o == null ? NULL : o;
    }

    private JsonObject object(String className, List<String> order, Map<String, Object> values) {
        JsonArray fields = new JsonArray();
        for (String name : order) {
            Object value = values.get(name);
            JsonArray field = new JsonArray();
            field.add(name);
            field.add(describe(value == NULL ? null : value));
            fields.add(field);
        }
        JsonObject d = tag("object");
        d.addProperty("class", className);
        d.add("fields", fields);
        return d;
    }

    private static JsonObject list(String type, JsonArray items) {
        JsonObject d = tag("list");
        d.addProperty("type", type);
        d.addProperty("variable", false);
        d.add("v", items);
        return d;
    }

    private static JsonObject str(String s) {
        JsonObject d = tag("string");
        d.addProperty("v", s);
        return d;
    }

    /** Hessian cannot carry -0.0 (written as 0x5B) nor NaN payloads (written canonical). */
    static JsonObject dbl(double x) {
        double read = x == 0.0 ? 0.0 : x;
        JsonObject d = tag("double");
        d.addProperty("bits", String.format("%016x", Double.doubleToLongBits(read)));
        return d;
    }

    private static JsonObject tag(String t) {
        JsonObject d = new JsonObject();
        d.addProperty("t", t);
        return d;
    }
}
