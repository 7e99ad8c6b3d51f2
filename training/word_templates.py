"""Question templates of the word problems (shopping, collecting, sharing, travel, ages, production).

Built with ``training.template_lists.templates``: the last template of each language is held out for
test; ``train_zh`` / ``train_en`` are sentence structures only train draws. Fields in braces are filled by
``training.reasoning_word``; counts may arrive as number words ("三", "three").
"""

from __future__ import annotations

from training.template_lists import templates

SHOP_EASY = templates(
    zh=[
        "{name}带了{m}{cur}去买{item}，每{u}{p}{cur}，买了{n}{u}。应该找回多少{cur}？",
        "一{u}{item}卖{p}{cur}。{name}买了{n}{u}，付了{m}{cur}，能找回多少{cur}？",
        "{name}有{m}{cur}，买{n}{u}{item}，每{u}{p}{cur}，还剩多少{cur}？",
        "{item}的单价是{p}{cur}。{name}用{m}{cur}买了{n}{u}，还剩下多少{cur}？",
    ],
    en=[
        "{name} has {m} {cur} and buys {n} {items} that cost {p} {cur} each. How much money is left?",
        "One {item} costs {p} {cur}. {name} buys {n} and pays with {m} {cur}. How much change is given back?",
        "{name} took {m} {cur} to the shop and bought {n} {items} at {p} {cur} apiece. How many {cur} were left?",
        "With {m} {cur} in the pocket, {name} buys {n} {items}. Each one is {p} {cur}. What is the change?",
    ],
    train_zh=[
        "{name}买了{n}{u}{item}，每{u}{p}{cur}。{name}给了售货员{m}{cur}，售货员要找给{name}多少{cur}？",
        "每{u}{item}{p}{cur}，{name}要买{n}{u}。如果付{m}{cur}，找零是多少{cur}？",
        "{name}的钱包里有{m}{cur}。{item}{p}{cur}一{u}，{name}买了{n}{u}以后还有多少{cur}？",
        "买{n}{u}{item}，一{u}{p}{cur}，付了{m}{cur}。找回多少{cur}？",
    ],
    train_en=[
        "{name} pays {m} {cur} for {n} {items}. Each costs {p} {cur}. How much change does {name} get?",
        "If {name} buys {n} {items} at {p} {cur} each and pays {m} {cur}, how much money comes back?",
        "The price of one {item} is {p} {cur}. {name} buys {n} of them and hands over {m} {cur}. "
        "How much is returned?",
        "{name} spends money on {n} {items} priced at {p} {cur} each, paying with {m} {cur}. "
        "How many {cur} are left?",
    ],
)
SHOP_HARD = templates(
    zh=[
        "{name}去商店买了{n1}{u}{item}和{n2}{u2}{item2}。{item}每{u}{p1}{cur}，{item2}每{u2}{p2}{cur}。"
        "{name}付了{m}{cur}，应找回多少{cur}？",
        "{item}每{u}{p1}{cur}，{item2}每{u2}{p2}{cur}。学校买了{n1}{u}{item}、{n2}{u2}{item2}，"
        "交给售货员{m}{cur}。售货员要找回多少{cur}？",
        "{name}有{m}{cur}。先买了{n1}{u}{item}，单价{p1}{cur}；又买了{n2}{u2}{item2}，单价{p2}{cur}。"
        "{name}还剩多少{cur}？",
        "买{n1}{u}单价{p1}{cur}的{item}，再买{n2}{u2}单价{p2}{cur}的{item2}，用{m}{cur}付款，找零是多少{cur}？",
    ],
    en=[
        "{name} buys {n1} {items} at {p1} {cur} each and {n2} {items2} at {p2} {cur} each, paying with {m} {cur}. "
        "How much change should {name} get?",
        "A school orders {n1} {items} for {p1} {cur} each. It also orders {n2} {items2} for {p2} {cur} each. "
        "It pays {m} {cur}. How much change does it receive?",
        "{name} has {m} {cur}. First {name} buys {n1} {items} costing {p1} {cur} apiece. Then {name} buys "
        "{n2} {items2} costing {p2} {cur} apiece. How many {cur} are left?",
        "What change comes back from {m} {cur} after paying for {n1} {items} ({p1} {cur} each) and "
        "{n2} {items2} ({p2} {cur} each)?",
    ],
    train_zh=[
        "{name}付给收银员{m}{cur}，买的是{n1}{u}{item}（每{u}{p1}{cur}）和{n2}{u2}{item2}（每{u2}{p2}{cur}）。收银员应找回多少{cur}？",
        "{n2}{u2}{item2}每{u2}{p2}{cur}，{n1}{u}{item}每{u}{p1}{cur}。{name}买下这些东西，交了{m}{cur}，还能剩多少{cur}？",
    ],
    train_en=[
        "{name} hands the cashier {m} {cur} for {n1} {items} and {n2} {items2}. The {items} are {p1} {cur} each "
        "and the {items2} are {p2} {cur} each. What change does {name} get back?",
        "{n2} {items2} cost {p2} {cur} each and {n1} {items} cost {p1} {cur} each. {name} buys all of them "
        "with {m} {cur}. How much money is left over?",
    ],
)
COLLECT_EASY = templates(
    zh=[
        "{name}有{a}{u}{item}，{other}又给了{name}{b}{u}，后来{name}送出{c}{u}。{name}现在有多少{u}{item}？",
        "{name}原来有{a}{u}{item}，又买了{b}{u}，然后用掉了{c}{u}，还剩几{u}？",
        "盒子里有{a}{u}{item}，放进去{b}{u}，又拿走{c}{u}。盒子里现在有多少{u}{item}？",
        "{name}先有{a}{u}{item}，得到{b}{u}后又分给同学{c}{u}，最后剩下多少{u}？",
    ],
    en=[
        "{name} has {a} {items}. {other} gives {name} {b} more, and then {name} gives away {c}. "
        "How many {items} does {name} have now?",
        "There are {a} {items} in a box. Someone puts in {b} more and then takes out {c}. "
        "How many {items} are in the box now?",
        "{name} had {a} {items}, bought {b} more and lost {c}. How many {items} are left?",
        "Starting with {a} {items}, {name} receives {b} and then hands {c} to friends. How many remain?",
    ],
    train_zh=[
        "{name}有{a}{u}{item}。后来{other}送来{b}{u}，{name}又用掉了{c}{u}。{name}还有几{u}{item}？",
        "{name}今天用掉了{c}{u}{item}。在这之前，{name}有{a}{u}，{other}又给了{b}{u}。{name}现在还有多少{u}？",
        "一开始有{a}{u}{item}，加了{b}{u}，拿走{c}{u}，还有多少{u}？",
        "{other}给了{name}{b}{u}{item}，{name}本来就有{a}{u}。后来{name}弄丢了{c}{u}，现在有多少{u}？",
    ],
    train_en=[
        "{name} had {a} {items}. Then {other} brought {b} more, and {name} used up {c}. How many {items} does "
        "{name} still have?",
        "{name} lost {c} {items} today. Before that, {name} had {a} and got {b} from {other}. How many "
        "are left now?",
        "{other} gave {name} {b} {items}. {name} already had {a}, then gave {c} away. How many does "
        "{name} have?",
        "First there are {a} {items}. Then {b} are added and {c} are removed. How many {items} are there at "
        "the end?",
    ],
)
COLLECT_HARD = templates(
    zh=[
        "仓库里有{a}箱{item}，每箱{b}{u}，另外还有{c}{u}散装的。今天卖出了{d}{u}。仓库里还剩多少{u}{item}？",
        "{name}买了{a}盒{item}，每盒{b}{u}。{name}原来还有{c}{u}，后来送给邻居{d}{u}。现在{name}一共有多少{u}{item}？",
        "学校有{a}包{item}，每包装{b}{u}，又收到捐赠的{c}{u}。发给学生{d}{u}以后，还剩多少{u}？",
        "一共{a}袋{item}，每袋{b}{u}；再加上{c}{u}，然后分出去{d}{u}。请问剩余多少{u}{item}？",
    ],
    en=[
        "A store has {a} boxes of {items} with {b} in each box, plus {c} loose {items}. Today it sells {d}. "
        "How many {items} are left?",
        "{name} buys {a} packs of {items}. Each pack holds {b}. {name} already had {c} and later gives {d} "
        "to a neighbour. How many {items} does {name} have now?",
        "A school receives {a} bags of {items}, {b} per bag, and a donation of {c} more. After handing out "
        "{d}, how many {items} are left?",
        "There are {a} crates with {b} {items} each and another {c} on the table. If {d} are taken away, "
        "how many {items} remain?",
    ],
    train_zh=[
        "{name}送出了{d}{u}{item}。送之前，{name}有{a}盒，每盒{b}{u}，还有{c}{u}散放着。{name}还剩多少{u}？",
        "超市进了{a}箱{item}，一箱{b}{u}，货架上本来有{c}{u}，卖掉{d}{u}后还有多少{u}{item}？",
    ],
    train_en=[
        "{name} gave away {d} {items}. Before that, {name} had {a} boxes of {b} {items} each and {c} more. "
        "How many {items} does {name} have left?",
        "A shop gets {a} cartons of {items}, {b} in a carton, and already has {c} on the shelf. It sells "
        "{d}. How many {items} does the shop have now?",
    ],
)
SHARE_EASY = templates(
    zh=[
        "{t}{u}{item}平均分给{k}个小朋友，每人分到几{u}？",
        "{name}把{t}{u}{item}平均分成{k}份，每份有多少{u}？",
        "有{t}{u}{item}，{k}个人平分，每个人能得到多少{u}？",
        "{k}位同学平均分{t}{u}{item}，每位同学分得几{u}？",
    ],
    en=[
        "{t} {items} are shared equally among {k} children. How many {items} does each child get?",
        "{name} splits {t} {items} into {k} equal groups. How many {items} are in each group?",
        "If {k} friends share {t} {items} equally, how many does each friend get?",
        "Divide {t} {items} evenly between {k} people. How many {items} does each person receive?",
    ],
    train_zh=[
        "{k}个小朋友一起分{t}{u}{item}，每人分得一样多，每人有几{u}？",
        "把{t}{u}{item}装进{k}个盘子，每个盘子装得一样多，每个盘子装几{u}？",
        "{name}有{t}{u}{item}，要平均送给{k}个朋友，每个朋友能收到多少{u}？",
        "{k}个组分{t}{u}{item}，每组同样多。每组多少{u}？",
    ],
    train_en=[
        "A group of {k} children share {t} {items} so that each gets the same number. How many does each "
        "child get?",
        "{name} puts {t} {items} into {k} bags, the same number in each. How many {items} go in each bag?",
        "There are {t} {items} for {k} students, shared fairly. How many {items} does every student get?",
        "Between {k} teams, {t} {items} are shared out, the same for every team. How many {items} does one "
        "team get?",
    ],
)
SHARE_HARD = templates(
    zh=[
        "老师买了{a}盒{item}，每盒{b}{u}，又加上{c}{u}，平均分给{k}个班，每个班分到多少{u}？",
        "{name}有{a}袋{item}，每袋{b}{u}，另外还有{c}{u}。把这些{item}平均分给{k}个人，每人分到几{u}？",
        "食堂运来{a}筐{item}，每筐{b}{u}，再加{c}{u}。平均分成{k}份，每份多少{u}？",
        "{a}包{item}每包{b}{u}，外加{c}{u}，全部平分给{k}组，每组得到多少{u}？",
    ],
    en=[
        "A teacher buys {a} boxes of {items} with {b} in each, then adds {c} more. The {items} are shared "
        "equally among {k} classes. How many does each class get?",
        "{name} has {a} bags of {items}, {b} per bag, and {c} extra {items}. If they are split evenly among "
        "{k} people, how many {items} does each person get?",
        "A kitchen receives {a} baskets of {items} holding {b} each, plus another {c}. Shared equally into "
        "{k} portions, how many {items} are in each portion?",
        "{a} packs of {items} with {b} per pack, together with {c} more, are divided equally among {k} teams. "
        "How many {items} does each team receive?",
    ],
    train_zh=[
        "{k}个班平均分一批{item}：一共{a}箱，每箱{b}{u}，另有{c}{u}。每个班能分到多少{u}？",
        "{name}把{c}{u}{item}和{a}盒{item}（每盒{b}{u}）放在一起，再平均分给{k}位朋友，每位朋友得到几{u}？",
    ],
    train_en=[
        "{k} groups share a delivery of {items} equally: {a} boxes of {b} each plus {c} loose ones. How many "
        "{items} does each group get?",
        "{name} puts {c} {items} together with {a} bags of {b} {items} each, then shares them equally among "
        "{k} friends. How many {items} does each friend get?",
    ],
)
TRAVEL_EASY = templates(
    zh=[
        "一辆车每小时行驶{v}千米，{t}小时行驶多少千米？",
        "{name}骑自行车，每小时骑{v}千米，骑了{t}小时，一共骑了多少千米？",
        "小船的速度是每小时{v}千米，行驶{t}小时能走多远？（单位：千米）",
        "以每小时{v}千米的速度走{t}小时，路程是多少千米？",
    ],
    en=[
        "A car travels at {v} km per hour. How far does it go in {t} hours?",
        "{name} cycles {v} kilometres every hour for {t} hours. What is the total distance in kilometres?",
        "A boat moves at {v} km/h for {t} hours. How many kilometres does it cover?",
        "Walking at {v} km an hour, how many kilometres does {name} cover in {t} hours?",
    ],
    train_zh=[
        "{name}走了{t}小时，每小时走{v}千米。{name}一共走了多少千米？",
        "一列火车{t}小时行驶了多少千米？它每小时行驶{v}千米。",
        "汽车的速度是{v}千米/小时，开了{t}小时，开了多远？（单位：千米）",
        "{name}跑步{t}小时，速度是每小时{v}千米，跑了多少千米？",
    ],
    train_en=[
        "{name} walked for {t} hours at {v} km per hour. How many kilometres did {name} walk?",
        "A bus drives for {t} hours. Its speed is {v} km/h. How far does it go, in km?",
        "How many kilometres does a runner cover in {t} hours at a speed of {v} km per hour?",
        "A horse trots {v} km every hour. After {t} hours, how many km has it gone?",
    ],
)
TRAVEL_HARD = templates(
    zh=[
        "两地相距{d}千米。一列火车先以每小时{v1}千米的速度行驶了{t1}小时，又以每小时{v2}千米的速度行驶了{t2}小时。"
        "火车离目的地还有多少千米？",
        "{name}开车去{d}千米外的城市。前{t1}小时每小时开{v1}千米，后{t2}小时每小时开{v2}千米。还剩多少千米没开？",
        "一辆货车要运货到{d}千米远的地方。它上午行驶{t1}小时，速度是每小时{v1}千米；下午行驶{t2}小时，"
        "速度是每小时{v2}千米。距离终点还有几千米？",
        "全程{d}千米，先用{t1}小时每小时走{v1}千米，再用{t2}小时每小时走{v2}千米，剩下的路程是多少千米？",
    ],
    en=[
        "Two cities are {d} km apart. A train travels at {v1} km/h for {t1} hours, then at {v2} km/h for "
        "{t2} hours. How many kilometres are left to go?",
        "{name} drives to a town {d} km away. For the first {t1} hours the speed is {v1} km/h, and for the "
        "next {t2} hours it is {v2} km/h. How far is {name} from the town now?",
        "A truck must cover {d} km. In the morning it drives {t1} hours at {v1} km/h. In the afternoon it "
        "drives {t2} hours at {v2} km/h. How many kilometres remain?",
        "The whole trip is {d} km. After {t1} hours at {v1} km/h and {t2} hours at {v2} km/h, what distance "
        "is still left?",
    ],
    train_zh=[
        "{name}要走完{d}千米的路。{name}先开了{t1}小时，每小时{v1}千米，又开了{t2}小时，每小时{v2}千米。离终点还有多少千米？",
        "一辆大巴先用{t2}小时每小时跑{v2}千米，再用{t1}小时每小时跑{v1}千米，全程{d}千米，还差多少千米到达？",
    ],
    train_en=[
        "{name} has a {d} km journey. {name} rides {t1} hours at {v1} km/h, then {t2} hours at {v2} km/h. How "
        "many kilometres are still to go?",
        "A coach goes {v2} km/h for {t2} hours and then {v1} km/h for {t1} hours on a {d} km route. How "
        "far is it from the end of the route?",
    ],
)
AGES_EASY = templates(
    zh=[
        "{name}今年{a}岁，哥哥比{name}大{d}岁。{n}年后哥哥多少岁？",
        "{name}今年{a}岁，姐姐比{name}大{d}岁，再过{n}年，姐姐几岁？",
        "妹妹今年{a}岁，表哥比她大{d}岁。过{n}年以后，表哥是多少岁？",
        "已知{name}{a}岁，{name}的哥哥年长{d}岁，那么{n}年之后哥哥的年龄是多少？",
    ],
    en=[
        "{name} is {a} years old. {name}'s brother is {d} years older. How old will the brother be in {n} years?",
        "{name} is {a}, and {name}'s sister is {d} years older. How old will the sister be {n} years from now?",
        "A girl is {a} years old and her cousin is {d} years older than her. What will the cousin's age be "
        "after {n} years?",
        "{name} is {a} now, and a friend is {d} years older. In {n} years, how old will the friend be?",
    ],
    train_zh=[
        "哥哥比{name}大{d}岁，{name}今年{a}岁。{n}年以后，哥哥几岁？",
        "{name}的姐姐比{name}大{d}岁。{name}现在{a}岁，{n}年后姐姐多少岁？",
        "{n}年后，比{name}大{d}岁的表姐是多少岁？{name}今年{a}岁。",
        "今年{name}{a}岁，堂哥比{name}大{d}岁，过{n}年堂哥几岁？",
    ],
    train_en=[
        "{name}'s brother is {d} years older than {name}, who is {a}. How old will the brother be {n} years "
        "from now?",
        "In {n} years, how old will {name}'s cousin be? The cousin is {d} years older than {name}, and "
        "{name} is {a} today.",
        "{name} turned {a} this year. {name}'s sister is {d} years older. What will the sister's age be "
        "after {n} years?",
        "A boy is {a} years old. His brother is older by {d} years. How old is the brother going to be "
        "in {n} years?",
    ],
)
AGES_HARD = templates(
    zh=[
        "{name}今年{c}岁，爸爸的年龄是{name}的{k}倍。{n}年后，爸爸和{name}的年龄一共是多少岁？",
        "妈妈的年龄是女儿的{k}倍，女儿今年{c}岁。再过{n}年，母女两人的年龄之和是多少？",
        "爷爷今年的岁数是孙子的{k}倍，孙子{c}岁。{n}年以后，两人一共多少岁？",
        "{name}{c}岁，叔叔的岁数是{name}的{k}倍。过了{n}年，他们俩加起来多少岁？",
    ],
    en=[
        "{name} is {c} years old, and {name}'s father is {k} times as old. In {n} years, what will the sum "
        "of their ages be?",
        "A mother is {k} times as old as her daughter, who is {c}. What will their combined age be {n} years "
        "from now?",
        "Grandpa's age is {k} times his grandson's age. The grandson is {c} years old. What will their ages "
        "add up to after {n} years?",
        "If {name} is {c} and an uncle is {k} times that age, what is the total of their two ages {n} years "
        "later?",
    ],
    train_zh=[
        "{n}年后，{name}和妈妈的年龄加起来是多少岁？{name}现在{c}岁，妈妈的年龄是{name}的{k}倍。",
        "奶奶的年龄是{name}的{k}倍，{name}今年{c}岁。{n}年后两人年龄的和是多少？",
    ],
    train_en=[
        "In {n} years, what will {name} and {name}'s aunt be together in age? {name} is {c} now, and the "
        "aunt is {k} times as old.",
        "A grandmother is {k} times as old as {name}, who is {c}. {n} years from now, what is the sum of "
        "their ages?",
    ],
)
PRODUCTION_EASY = templates(
    zh=[
        "一台机器每小时生产{p}个零件，{h}小时生产多少个零件？",
        "{name}每小时能折{p}只纸鹤，{h}小时能折多少只？",
        "工人每小时包装{p}箱货物，工作{h}小时一共包装几箱？",
        "打印机每小时打印{p}份文件，{h}小时能打印多少份？",
    ],
    en=[
        "A machine makes {p} parts every hour. How many parts does it make in {h} hours?",
        "{name} folds {p} paper cranes per hour. How many cranes does {name} fold in {h} hours?",
        "A worker packs {p} boxes an hour. How many boxes are packed after {h} hours?",
        "A printer prints {p} documents per hour. How many documents does it print in {h} hours?",
    ],
    train_zh=[
        "{name}{h}小时做了多少个蛋糕？{name}每小时做{p}个。",
        "面包机一小时烤{p}个面包，连续烤了{h}小时，一共烤了几个面包？",
        "工厂的机器人每小时组装{p}台玩具，工作了{h}小时，组装了多少台？",
        "{name}每小时写{p}个汉字，写了{h}小时，一共写了多少个汉字？",
    ],
    train_en=[
        "In {h} hours, how many cakes does {name} bake if {name} bakes {p} cakes an hour?",
        "A robot assembles {p} toys each hour and works for {h} hours. How many toys does it assemble?",
        "{name} writes {p} words per hour for {h} hours. How many words is that altogether?",
        "A pump fills {p} buckets an hour. It runs for {h} hours. How many buckets does it fill?",
    ],
)
PRODUCTION_HARD = templates(
    zh=[
        "一台机器每小时生产{p}个零件，每天工作{h}小时，连续工作{d}天，其中有{q}个不合格。合格的零件有多少个？",
        "工厂每小时做{p}件衣服，每天生产{h}小时。{d}天后，卖出了{q}件，还剩多少件？",
        "{name}的面包店每小时烤{p}个面包，每天烤{h}小时，一共烤了{d}天，送出{q}个，还剩多少个？",
        "某车间每小时加工{p}个零件，一天干{h}小时，干了{d}天，发现{q}个次品。合格品有多少个？",
    ],
    en=[
        "A machine makes {p} parts an hour and runs {h} hours a day. After {d} days, {q} parts are found to "
        "be faulty. How many good parts are there?",
        "A factory sews {p} shirts per hour for {h} hours each day. After {d} days it has sold {q} shirts. "
        "How many shirts are left?",
        "{name}'s bakery bakes {p} loaves per hour, {h} hours a day, for {d} days. {q} loaves are given away. "
        "How many loaves remain?",
        "A workshop produces {p} items every hour. It works {h} hours a day for {d} days, and {q} items fail "
        "inspection. How many items pass?",
    ],
    train_zh=[
        "{d}天里，工厂每天开工{h}小时，每小时做{p}个杯子，其中{q}个有裂纹。好杯子有多少个？",
        "{name}的工作室每小时做{p}个风筝，一天做{h}小时，做了{d}天，卖掉{q}个，还剩几个？",
    ],
    train_en=[
        "For {d} days a factory runs {h} hours a day, making {p} cups an hour. {q} cups are cracked. How many "
        "good cups are there?",
        "{name}'s workshop makes {p} kites an hour for {h} hours a day. After {d} days, {q} kites have been "
        "sold. How many kites remain?",
    ],
)

WORD_LISTS = [
    SHOP_EASY,
    SHOP_HARD,
    COLLECT_EASY,
    COLLECT_HARD,
    SHARE_EASY,
    SHARE_HARD,
    TRAVEL_EASY,
    TRAVEL_HARD,
    AGES_EASY,
    AGES_HARD,
    PRODUCTION_EASY,
    PRODUCTION_HARD,
]
